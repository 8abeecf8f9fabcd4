nav-label = Main
nav-chat = Chat
nav-rooms = Rooms
nav-devices = Devices
nav-sign-out = Sign out
language-label = Language
language-switch = Change

field-username = Username
field-password = Password
field-password-confirm = Password (again)
field-display-name = Display name
field-slug = Room address
field-room-name = Name
field-topic = Topic
field-visibility = Who can find it
hint-username = 2–32 letters, digits, “.”, “_” or “-”.
hint-password = At least 8 characters.
hint-slug = Lowercase letters, digits, “-” and “_”, as in #general.

login-title = Sign in
login-submit = Sign in
login-invalid = That username and password do not match an active account.
login-throttled = Too many failed sign-in attempts. Try again in { $minutes } minutes.

setup-title = Create the administrator
setup-intro = Confab has no accounts yet. This one-time page creates the administrator account; the link stops working once it is used.
setup-submit = Create and sign in

form-invalid = Please check the form.
form-invalid-username = Usernames have 2–32 letters, digits, “.”, “_” or “-”.
form-invalid-password = Passwords need at least 8 characters (and at most 72 bytes).
form-invalid-display-name = Display names have 1–64 characters.
form-invalid-slug = Room addresses use lowercase letters, digits, “-” and “_”, starting with a letter or digit.
form-invalid-room-name = Room names have 1–80 characters.
form-invalid-topic = Topics have at most 250 characters.
form-password-mismatch = The two passwords differ.

app-rooms = Rooms
app-browse-rooms = Browse or create rooms
app-pick-room = Pick a room
app-message-label = Message
app-message-placeholder = Write a message…
app-send = Send
app-connecting = Connecting…
app-connected = Connected
app-offline = Offline — reconnecting…
app-error-forbidden = You cannot do that in this room.
app-error-failed = That did not work. Please try again.
app-signed-in-elsewhere = Your account was just signed in on another device.
app-message-deleted = (message deleted)
app-also-signed-in = You are also signed in on:
app-manage-devices = Manage your devices

rooms-title = Public rooms
rooms-none = There are no public rooms yet.
rooms-more = More rooms
rooms-open = Open
rooms-join = Join
rooms-archived = archived
rooms-create-title = Create a room
rooms-create-submit = Create room
rooms-kind-public = Public: anyone can find and join it
rooms-kind-private = Private: members only, by invitation
rooms-slug-taken = A room with that address already exists.

room-settings-title = Room settings
room-settings-archived = Archived (read-only, hidden from new members)
room-settings-save = Save
room-settings-saved = Saved.
room-settings-back = Back to the room

devices-title = Your devices
devices-intro = These browsers are signed in to your account. Sign out any you do not recognise.
devices-this-device = this device
devices-signed-in-at = signed in
devices-last-seen = last seen
devices-sign-out = Sign out
devices-sign-out-others = Sign out everywhere else

error-request-id = Request id:
error-home = Go to the start page
error-400-title = That request was not understood
error-400-body = Please go back and check what you entered.
error-403-title = Not allowed
error-403-body = You do not have access to this page.
error-404-title = Page not found
error-404-body = There is nothing here, or you may not see it.
error-409-title = Already exists
error-409-body = Something with that name already exists.
error-429-title = Too many attempts
error-429-body = Please wait a little before trying again.
error-500-title = Something went wrong
error-500-body = The error was logged. Please try again in a moment; if it keeps happening, give the request id below to your administrator.
error-503-title = Temporarily unavailable
error-503-body = Confab cannot reach one of its services right now. Please try again in a moment.
error-csrf-title = This form has expired
error-csrf-body = For your security the form could not be accepted. Reload the page and try again.
