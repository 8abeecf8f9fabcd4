# A administração (/admin/). Todas as chaves começam por "admin-".
admin-nav-link = Administração
admin-title = Administração
admin-nav-dashboard = Painel
admin-nav-users = Utilizadores
admin-nav-groups = Grupos
admin-nav-rooms = Salas
admin-nav-messages = Mensagens
admin-nav-sessions = Sessões
admin-nav-attachments = Anexos
admin-nav-audit = Registo de auditoria

admin-dashboard-title = Painel
admin-count-users = Utilizadores
admin-count-active-users = Utilizadores ativos
admin-count-staff = Equipa
admin-count-rooms = Salas
admin-count-archived-rooms = Salas arquivadas
admin-count-messages = Mensagens
admin-count-sessions = Sessões iniciadas
admin-count-attachments = Anexos
admin-recent-activity = Atividade recente
admin-audit-all = Todo o registo de auditoria

admin-search = Pesquisar
admin-filter = Filtrar
admin-filter-active = Ativo
admin-filter-staff = Equipa
admin-any = Qualquer
admin-yes = Sim
admin-no = Não
admin-sort = Ordem
admin-sort-newest = Mais recentes primeiro
admin-sort-oldest = Mais antigos primeiro
admin-sort-username = Por nome de utilizador
admin-from = De
admin-until = Até
admin-next-page = Página seguinte
admin-none = Nada aqui.

admin-col-when = Quando
admin-col-actor = Quem
admin-col-action = Ação
admin-col-target = Alvo
admin-col-detail = Detalhe
admin-col-ip = Endereço
admin-col-status = Estado
admin-col-created = Criado
admin-col-last-login = Último início de sessão
admin-col-last-seen = Última atividade
admin-col-name = Nome
admin-col-members = Membros
admin-col-kind = Tipo
admin-col-role = Função
admin-col-author = Autor
admin-col-body = Mensagem
admin-col-device = Dispositivo
admin-col-type = Tipo
admin-col-size = Tamanho (bytes)

admin-active = ativo
admin-inactive = inativo
admin-staff = Equipa
admin-superuser = Superutilizador
admin-archived = Arquivada
admin-edited = editada
admin-deleted = apagada
admin-ended = terminada
admin-kind-public = Pública
admin-kind-private = Privada
admin-kind-direct = Conversa privada
admin-permissions = Permissões

admin-create = Criar
admin-save = Guardar
admin-saved = Guardado.
admin-delete = Apagar
admin-restore = Restaurar
admin-remove = Remover
admin-confirm = Sim, continuar
admin-cancel = Cancelar
admin-danger-zone = Cuidado

admin-users-title = Utilizadores
admin-users-new = Novo utilizador
admin-user-edit = Conta
admin-user-password = Palavra-passe
admin-user-password-hint = Definir uma nova palavra-passe termina a sessão do utilizador em todo o lado.
admin-user-password-set = Definir palavra-passe
admin-user-access = Grupos e permissões
admin-user-deactivate = Desativar
admin-user-deactivate-confirm = A conta termina sessão em todo o lado de imediato e não pode entrar até ser reativada. As suas mensagens ficam.
admin-user-reactivate = Reativar

admin-groups-title = Grupos
admin-groups-new = Novo grupo

admin-rooms-title = Salas
admin-rooms-new = Nova sala
admin-rooms-edit = Sala
admin-rooms-archive = Arquivar
admin-rooms-unarchive = Desarquivar
admin-rooms-set-member = Adicionar ou alterar membro
admin-rooms-export = Exportar (JSON)
admin-rooms-delete = Apagar sala
admin-rooms-delete-confirm = A sala, os seus membros e todas as suas mensagens serão apagados para sempre. Considere arquivá-la ou exportá-la primeiro.

admin-messages-title = Mensagens
admin-messages-no-bodies = Pode ver que as mensagens existem, não o que dizem.
admin-messages-delete = Apagar mensagem
admin-messages-delete-confirm = A mensagem desaparece da sala para todos de imediato. Pode ser restaurada aqui.

admin-sessions-title = Sessões
admin-sessions-ended-too = Incluir sessões terminadas
admin-sessions-revoke = Terminar sessão
admin-sessions-revoke-all = Terminar sessão em todo o lado
admin-sessions-revoke-confirm = Este dispositivo termina sessão de imediato.

admin-attachments-title = Anexos
admin-attachments-delete = Apagar anexo
admin-attachments-delete-confirm = O anexo será apagado para sempre.

admin-audit-title = Registo de auditoria

admin-error-superuser-only = Só superutilizadores podem dar ou retirar o estatuto de superutilizador.
admin-error-own-status = Não pode alterar o seu próprio estatuto de equipa nem desativar-se.
admin-error-username-taken = Esse nome de utilizador já existe.
admin-error-unknown-group = Esse grupo não existe.
admin-error-unknown-permission = Essa permissão não existe.
admin-error-grant-own-only = Só pode conceder permissões que tem.
admin-error-group-taken = Já existe um grupo com esse nome.
admin-error-group-name = Os nomes de grupo têm de 1 a 80 caracteres.
admin-error-role = Escolha uma das funções.
admin-error-no-such-user = Não há nenhum utilizador com esse nome.
admin-error-no-such-room = Não há nenhuma sala com esse endereço.
admin-error-date = Use uma data como 2026-11-27.
admin-error-general-room = A sala geral não pode ser apagada.
