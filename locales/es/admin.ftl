# Administración del personal (/admin/). Todas las claves empiezan por "admin-".
admin-nav-link = Administración
admin-title = Administración
admin-nav-dashboard = Panel
admin-nav-users = Usuarios
admin-nav-groups = Grupos
admin-nav-rooms = Salas
admin-nav-messages = Mensajes
admin-nav-sessions = Sesiones
admin-nav-attachments = Adjuntos
admin-nav-audit = Registro de auditoría

admin-dashboard-title = Panel
admin-count-users = Usuarios
admin-count-active-users = Usuarios activos
admin-count-staff = Personal
admin-count-rooms = Salas
admin-count-archived-rooms = Salas archivadas
admin-count-messages = Mensajes
admin-count-sessions = Sesiones abiertas
admin-count-attachments = Adjuntos
admin-recent-activity = Actividad reciente
admin-audit-all = Todo el registro de auditoría

admin-search = Buscar
admin-filter = Filtrar
admin-filter-active = Activo
admin-filter-staff = Personal
admin-any = Cualquiera
admin-yes = Sí
admin-no = No
admin-sort = Orden
admin-sort-newest = Más recientes primero
admin-sort-oldest = Más antiguos primero
admin-sort-username = Por nombre de usuario
admin-from = Desde
admin-until = Hasta
admin-next-page = Página siguiente
admin-none = No hay nada aquí.

admin-col-when = Cuándo
admin-col-actor = Quién
admin-col-action = Acción
admin-col-target = Objeto
admin-col-detail = Detalle
admin-col-ip = Dirección
admin-col-status = Estado
admin-col-created = Creado
admin-col-last-login = Último inicio de sesión
admin-col-last-seen = Última actividad
admin-col-name = Nombre
admin-col-members = Miembros
admin-col-kind = Tipo
admin-col-role = Rol
admin-col-author = Autor
admin-col-body = Mensaje
admin-col-device = Dispositivo
admin-col-type = Tipo
admin-col-size = Tamaño (bytes)

admin-active = activo
admin-inactive = inactivo
admin-staff = Personal
admin-superuser = Superusuario
admin-archived = Archivada
admin-edited = editado
admin-deleted = eliminado
admin-ended = terminada
admin-kind-public = Pública
admin-kind-private = Privada
admin-kind-direct = Chat privado
admin-permissions = Permisos

admin-create = Crear
admin-save = Guardar
admin-saved = Guardado.
admin-delete = Eliminar
admin-restore = Restaurar
admin-remove = Quitar
admin-confirm = Sí, hacerlo
admin-cancel = Cancelar
admin-danger-zone = Cuidado

admin-users-title = Usuarios
admin-users-new = Nuevo usuario
admin-user-edit = Cuenta
admin-user-password = Contraseña
admin-user-password-hint = Poner una contraseña nueva cierra la sesión del usuario en todas partes.
admin-user-password-set = Poner contraseña
admin-user-access = Grupos y permisos
admin-user-deactivate = Desactivar
admin-user-deactivate-confirm = Se cerrarán al instante todas las sesiones de la cuenta y no podrá iniciar sesión hasta que se reactive. Sus mensajes se conservan.
admin-user-reactivate = Reactivar

admin-groups-title = Grupos
admin-groups-new = Nuevo grupo

admin-rooms-title = Salas
admin-rooms-new = Nueva sala
admin-rooms-edit = Sala
admin-rooms-archive = Archivar
admin-rooms-unarchive = Desarchivar
admin-rooms-set-member = Añadir o cambiar miembro
admin-rooms-export = Exportar (JSON)
admin-rooms-delete = Eliminar sala
admin-rooms-delete-confirm = La sala, sus miembros y todos sus mensajes se eliminarán para siempre. Piense en archivarla o exportarla antes.

admin-messages-title = Mensajes
admin-messages-no-bodies = Puede ver que los mensajes existen, no lo que dicen.
admin-messages-delete = Eliminar mensaje
admin-messages-delete-confirm = El mensaje desaparece de la sala para todos al instante. Se puede restaurar aquí.

admin-sessions-title = Sesiones
admin-sessions-ended-too = Incluir sesiones terminadas
admin-sessions-revoke = Cerrar sesión
admin-sessions-revoke-all = Cerrar sesión en todas partes
admin-sessions-revoke-confirm = Se cerrará al instante la sesión de este dispositivo.

admin-attachments-title = Adjuntos
admin-attachments-delete = Eliminar adjunto
admin-attachments-delete-confirm = El adjunto se eliminará para siempre.

admin-audit-title = Registro de auditoría

admin-error-superuser-only = Solo los superusuarios pueden dar o quitar la condición de superusuario.
admin-error-own-status = No puede cambiar su propia condición de personal ni desactivarse.
admin-error-username-taken = Ese nombre de usuario ya existe.
admin-error-unknown-group = Ese grupo no existe.
admin-error-unknown-permission = Ese permiso no existe.
admin-error-grant-own-only = Solo puede conceder permisos que usted tiene.
admin-error-group-taken = Ya existe un grupo con ese nombre.
admin-error-group-name = Los nombres de grupo tienen de 1 a 80 caracteres.
admin-error-role = Elija uno de los roles.
admin-error-no-such-user = No hay ningún usuario con ese nombre.
admin-error-no-such-room = No hay ninguna sala con esa dirección.
admin-error-date = Use una fecha como 2026-11-27.
admin-error-general-room = La sala general no se puede eliminar.
