nav-label = Principal
nav-chat = Chat
nav-rooms = Salas
nav-devices = Dispositivos
nav-sign-out = Cerrar sesión
language-label = Idioma
language-switch = Cambiar

field-username = Nombre de usuario
field-password = Contraseña
field-password-confirm = Contraseña (otra vez)
field-display-name = Nombre visible
field-slug = Dirección de la sala
field-room-name = Nombre
field-topic = Tema
field-visibility = Quién puede encontrarla
hint-username = De 2 a 32 letras, dígitos, «.», «_» o «-».
hint-password = Al menos 8 caracteres.
hint-slug = Minúsculas, dígitos, «-» y «_», como en #general.

login-title = Iniciar sesión
login-submit = Entrar
login-invalid = Ese nombre de usuario y esa contraseña no corresponden a ninguna cuenta activa.
login-throttled = Demasiados intentos fallidos. Vuelve a intentarlo dentro de { $minutes } minutos.

setup-title = Crear el administrador
setup-intro = Confab aún no tiene cuentas. Esta página de un solo uso crea la cuenta de administrador; el enlace deja de funcionar después de usarlo.
setup-submit = Crear y entrar

form-invalid = Revisa el formulario.
form-invalid-username = Los nombres de usuario tienen de 2 a 32 letras, dígitos, «.», «_» o «-».
form-invalid-password = La contraseña necesita al menos 8 caracteres (y como mucho 72 bytes).
form-invalid-display-name = El nombre visible tiene de 1 a 64 caracteres.
form-invalid-slug = Las direcciones de sala usan minúsculas, dígitos, «-» y «_», empezando por una letra o un dígito.
form-invalid-room-name = El nombre de la sala tiene de 1 a 80 caracteres.
form-invalid-topic = El tema tiene como mucho 250 caracteres.
form-password-mismatch = Las dos contraseñas no coinciden.

app-rooms = Salas
app-browse-rooms = Ver o crear salas
app-pick-room = Elige una sala
app-message-label = Mensaje
app-message-placeholder = Escribe un mensaje…
app-send = Enviar
app-connecting = Conectando…
app-connected = Conectado
app-offline = Sin conexión; reconectando…
app-error-forbidden = No puedes hacer eso en esta sala.
app-error-failed = No ha funcionado. Inténtalo de nuevo.
app-signed-in-elsewhere = Se acaba de iniciar sesión con tu cuenta en otro dispositivo.
app-message-deleted = (mensaje eliminado)
app-also-signed-in = También tienes la sesión iniciada en:
app-manage-devices = Gestionar tus dispositivos

rooms-title = Salas públicas
rooms-none = Todavía no hay salas públicas.
rooms-more = Más salas
rooms-open = Abrir
rooms-join = Unirse
rooms-archived = archivada
rooms-create-title = Crear una sala
rooms-create-submit = Crear sala
rooms-kind-public = Pública: cualquiera puede encontrarla y unirse
rooms-kind-private = Privada: solo miembros, por invitación
rooms-slug-taken = Ya existe una sala con esa dirección.

room-settings-title = Ajustes de la sala
room-settings-archived = Archivada (solo lectura, oculta para nuevos miembros)
room-settings-save = Guardar
room-settings-saved = Guardado.
room-settings-back = Volver a la sala

devices-title = Tus dispositivos
devices-intro = Estos navegadores tienen la sesión iniciada con tu cuenta. Cierra la sesión en los que no reconozcas.
devices-this-device = este dispositivo
devices-signed-in-at = sesión iniciada
devices-last-seen = última actividad
devices-sign-out = Cerrar sesión
devices-sign-out-others = Cerrar sesión en todos los demás

error-request-id = Id. de la solicitud:
error-home = Ir a la página de inicio
error-400-title = No se entendió la solicitud
error-400-body = Vuelve atrás y revisa lo que has escrito.
error-403-title = No permitido
error-403-body = No tienes acceso a esta página.
error-404-title = Página no encontrada
error-404-body = Aquí no hay nada, o no puedes verlo.
error-409-title = Ya existe
error-409-body = Ya existe algo con ese nombre.
error-429-title = Demasiados intentos
error-429-body = Espera un poco antes de volver a intentarlo.
error-500-title = Algo ha fallado
error-500-body = El error ha quedado registrado. Inténtalo de nuevo en un momento; si sigue ocurriendo, da el id. de la solicitud a tu administrador.
error-503-title = No disponible temporalmente
error-503-body = Confab no puede acceder ahora a uno de sus servicios. Inténtalo de nuevo en un momento.
error-csrf-title = Este formulario ha caducado
error-csrf-body = Por tu seguridad no se pudo aceptar el formulario. Recarga la página e inténtalo de nuevo.
