nav-label = Principal
nav-chat = Conversa
nav-rooms = Salas
nav-devices = Dispositivos
nav-sign-out = Terminar sessão
language-label = Idioma
language-switch = Mudar

field-username = Nome de utilizador
field-password = Palavra-passe
field-password-confirm = Palavra-passe (repetir)
field-display-name = Nome apresentado
field-slug = Endereço da sala
field-room-name = Nome
field-topic = Tema
field-visibility = Quem a pode encontrar
hint-username = 2 a 32 letras, algarismos, «.», «_» ou «-».
hint-password = Pelo menos 8 caracteres.
hint-slug = Minúsculas, algarismos, «-» e «_», como em #general.

login-title = Iniciar sessão
login-submit = Entrar
login-invalid = Esse nome de utilizador e essa palavra-passe não correspondem a nenhuma conta ativa.
login-throttled = Demasiadas tentativas falhadas. Tente novamente dentro de { $minutes } minutos.

setup-title = Criar o administrador
setup-intro = O Confab ainda não tem contas. Esta página de uso único cria a conta de administrador; a ligação deixa de funcionar depois de usada.
setup-submit = Criar e entrar

form-invalid = Verifique o formulário.
form-invalid-username = Os nomes de utilizador têm 2 a 32 letras, algarismos, «.», «_» ou «-».
form-invalid-password = A palavra-passe precisa de pelo menos 8 caracteres (e no máximo 72 bytes).
form-invalid-display-name = O nome apresentado tem 1 a 64 caracteres.
form-invalid-slug = Os endereços de sala usam minúsculas, algarismos, «-» e «_», começando por uma letra ou um algarismo.
form-invalid-room-name = O nome da sala tem 1 a 80 caracteres.
form-invalid-topic = O tema tem no máximo 250 caracteres.
form-password-mismatch = As duas palavras-passe são diferentes.

app-rooms = Salas
app-browse-rooms = Ver ou criar salas
app-pick-room = Escolha uma sala
app-message-label = Mensagem
app-message-placeholder = Escreva uma mensagem…
app-send = Enviar
app-connecting = A ligar…
app-connected = Ligado
app-offline = Sem ligação — a voltar a ligar…
app-error-forbidden = Não pode fazer isso nesta sala.
app-error-failed = Não funcionou. Tente novamente.
app-signed-in-elsewhere = A sua conta acabou de iniciar sessão noutro dispositivo.
app-message-deleted = (mensagem eliminada)
app-also-signed-in = Também tem sessão iniciada em:
app-manage-devices = Gerir os seus dispositivos

rooms-title = Salas públicas
rooms-none = Ainda não há salas públicas.
rooms-more = Mais salas
rooms-open = Abrir
rooms-join = Entrar
rooms-archived = arquivada
rooms-create-title = Criar uma sala
rooms-create-submit = Criar sala
rooms-kind-public = Pública: qualquer pessoa a pode encontrar e entrar
rooms-kind-private = Privada: só membros, por convite
rooms-slug-taken = Já existe uma sala com esse endereço.

room-settings-title = Definições da sala
room-settings-archived = Arquivada (só leitura, oculta para novos membros)
room-settings-save = Guardar
room-settings-saved = Guardado.
room-settings-back = Voltar à sala

devices-title = Os seus dispositivos
devices-intro = Estes navegadores têm sessão iniciada na sua conta. Termine a sessão nos que não reconhecer.
devices-this-device = este dispositivo
devices-signed-in-at = sessão iniciada
devices-last-seen = última atividade
devices-sign-out = Terminar sessão
devices-sign-out-others = Terminar sessão em todos os outros

error-request-id = Id. do pedido:
error-home = Ir para a página inicial
error-400-title = O pedido não foi compreendido
error-400-body = Volte atrás e verifique o que escreveu.
error-403-title = Não permitido
error-403-body = Não tem acesso a esta página.
error-404-title = Página não encontrada
error-404-body = Não há nada aqui, ou não o pode ver.
error-409-title = Já existe
error-409-body = Já existe algo com esse nome.
error-429-title = Demasiadas tentativas
error-429-body = Aguarde um pouco antes de tentar novamente.
error-500-title = Algo correu mal
error-500-body = O erro foi registado. Tente novamente daqui a pouco; se continuar a acontecer, dê o id. do pedido abaixo ao seu administrador.
error-503-title = Temporariamente indisponível
error-503-body = O Confab não consegue contactar um dos seus serviços neste momento. Tente novamente daqui a pouco.
error-csrf-title = Este formulário expirou
error-csrf-body = Por segurança, o formulário não pôde ser aceite. Recarregue a página e tente novamente.
