# The staff admin (/admin/). Every key starts with "admin-".
admin-nav-link = Admin
admin-title = Admin
admin-nav-dashboard = Dashboard
admin-nav-users = Users
admin-nav-groups = Groups
admin-nav-rooms = Rooms
admin-nav-messages = Messages
admin-nav-sessions = Sessions
admin-nav-attachments = Attachments
admin-nav-audit = Audit log

admin-dashboard-title = Dashboard
admin-count-users = Users
admin-count-active-users = Active users
admin-count-staff = Staff
admin-count-rooms = Rooms
admin-count-archived-rooms = Archived rooms
admin-count-messages = Messages
admin-count-sessions = Signed-in sessions
admin-count-attachments = Attachments
admin-recent-activity = Recent activity
admin-audit-all = The whole audit log

admin-search = Search
admin-filter = Filter
admin-filter-active = Active
admin-filter-staff = Staff
admin-any = Any
admin-yes = Yes
admin-no = No
admin-sort = Sort
admin-sort-newest = Newest first
admin-sort-oldest = Oldest first
admin-sort-username = By username
admin-from = From
admin-until = Until
admin-next-page = Next page
admin-none = Nothing here.

admin-col-when = When
admin-col-actor = Who
admin-col-action = Action
admin-col-target = Target
admin-col-detail = Detail
admin-col-ip = Address
admin-col-status = Status
admin-col-created = Created
admin-col-last-login = Last sign-in
admin-col-last-seen = Last seen
admin-col-name = Name
admin-col-members = Members
admin-col-kind = Kind
admin-col-role = Role
admin-col-author = Author
admin-col-body = Message
admin-col-device = Device
admin-col-type = Type
admin-col-size = Size (bytes)

admin-active = active
admin-inactive = inactive
admin-staff = Staff
admin-superuser = Superuser
admin-archived = Archived
admin-edited = edited
admin-deleted = deleted
admin-ended = ended
admin-kind-public = Public
admin-kind-private = Private
admin-kind-direct = Private chat
admin-permissions = Permissions

admin-create = Create
admin-save = Save
admin-saved = Saved.
admin-delete = Delete
admin-restore = Restore
admin-remove = Remove
admin-confirm = Yes, do it
admin-cancel = Cancel
admin-danger-zone = Careful

admin-users-title = Users
admin-users-new = New user
admin-user-edit = Account
admin-user-password = Password
admin-user-password-hint = Setting a new password signs the user out everywhere.
admin-user-password-set = Set password
admin-user-access = Groups and permissions
admin-user-deactivate = Deactivate
admin-user-deactivate-confirm = The account will be signed out everywhere at once and cannot sign in until it is reactivated. Its messages stay.
admin-user-reactivate = Reactivate

admin-groups-title = Groups
admin-groups-new = New group

admin-rooms-title = Rooms
admin-rooms-new = New room
admin-rooms-edit = Room
admin-rooms-archive = Archive
admin-rooms-unarchive = Unarchive
admin-rooms-set-member = Add or change member
admin-rooms-export = Export (JSON)
admin-rooms-delete = Delete room
admin-rooms-delete-confirm = The room, its members and all its messages will be deleted for good. Consider archiving or exporting it first.

admin-messages-title = Messages
admin-messages-no-bodies = You can see that messages exist, not what they say.
admin-messages-delete = Delete message
admin-messages-delete-confirm = The message disappears from the room for everyone at once. It can be restored here.

admin-sessions-title = Sessions
admin-sessions-ended-too = Include ended sessions
admin-sessions-revoke = Sign out
admin-sessions-revoke-all = Sign out everywhere
admin-sessions-revoke-confirm = This device will be signed out at once.

admin-attachments-title = Attachments
admin-attachments-delete = Delete attachment
admin-attachments-delete-confirm = The attachment will be deleted for good.

admin-audit-title = Audit log

admin-error-superuser-only = Only superusers can grant or take away superuser status.
admin-error-own-status = You cannot change your own staff status or deactivate yourself.
admin-error-username-taken = That username is taken.
admin-error-unknown-group = That group does not exist.
admin-error-unknown-permission = That permission does not exist.
admin-error-grant-own-only = You can grant only permissions you hold yourself.
admin-error-group-taken = A group with that name exists.
admin-error-group-name = Group names have 1–80 characters.
admin-error-role = Pick one of the roles.
admin-error-no-such-user = There is no user with that name.
admin-error-no-such-room = There is no room with that address.
admin-error-date = Use a date like 2026-11-27.
admin-error-general-room = The general room cannot be deleted.
