nav-label = Hauptmenü
nav-chat = Chat
nav-rooms = Räume
nav-devices = Geräte
nav-sign-out = Abmelden
language-label = Sprache
language-switch = Wechseln

field-username = Benutzername
field-password = Passwort
field-password-confirm = Passwort (wiederholen)
field-display-name = Anzeigename
field-slug = Adresse des Raums
field-room-name = Name
field-topic = Thema
field-visibility = Wer ihn finden kann
hint-username = 2–32 Buchstaben, Ziffern, „.“, „_“ oder „-“.
hint-password = Mindestens 8 Zeichen.
hint-slug = Kleinbuchstaben, Ziffern, „-“ und „_“, wie in #general.

login-title = Anmelden
login-submit = Anmelden
login-invalid = Benutzername und Passwort passen zu keinem aktiven Konto.
login-throttled = Zu viele fehlgeschlagene Anmeldeversuche. Versuchen Sie es in { $minutes } Minuten erneut.

setup-title = Administrator anlegen
setup-intro = Confab hat noch keine Konten. Diese einmalige Seite legt das Administratorkonto an; der Link funktioniert danach nicht mehr.
setup-submit = Anlegen und anmelden

form-invalid = Bitte prüfen Sie das Formular.
form-invalid-username = Benutzernamen haben 2–32 Buchstaben, Ziffern, „.“, „_“ oder „-“.
form-invalid-password = Passwörter brauchen mindestens 8 Zeichen (und höchstens 72 Bytes).
form-invalid-display-name = Anzeigenamen haben 1–64 Zeichen.
form-invalid-slug = Raumadressen bestehen aus Kleinbuchstaben, Ziffern, „-“ und „_“ und beginnen mit einem Buchstaben oder einer Ziffer.
form-invalid-room-name = Raumnamen haben 1–80 Zeichen.
form-invalid-topic = Themen haben höchstens 250 Zeichen.
form-password-mismatch = Die beiden Passwörter stimmen nicht überein.

app-rooms = Räume
app-browse-rooms = Räume ansehen oder anlegen
app-pick-room = Wählen Sie einen Raum
app-message-label = Nachricht
app-message-placeholder = Nachricht schreiben…
app-send = Senden
app-connecting = Verbinde…
app-connected = Verbunden
app-offline = Offline – verbinde neu…
app-error-forbidden = Das dürfen Sie in diesem Raum nicht.
app-error-failed = Das hat nicht geklappt. Bitte versuchen Sie es erneut.
app-signed-in-elsewhere = Ihr Konto wurde gerade auf einem anderen Gerät angemeldet.
app-message-deleted = (Nachricht gelöscht)
app-also-signed-in = Sie sind auch angemeldet auf:
app-manage-devices = Geräte verwalten

rooms-title = Öffentliche Räume
rooms-none = Es gibt noch keine öffentlichen Räume.
rooms-more = Weitere Räume
rooms-open = Öffnen
rooms-join = Beitreten
rooms-archived = archiviert
rooms-create-title = Raum anlegen
rooms-create-submit = Raum anlegen
rooms-kind-public = Öffentlich: alle können ihn finden und beitreten
rooms-kind-private = Privat: nur Mitglieder, auf Einladung
rooms-slug-taken = Ein Raum mit dieser Adresse existiert bereits.

room-settings-title = Raumeinstellungen
room-settings-archived = Archiviert (nur lesen, für neue Mitglieder verborgen)
room-settings-save = Speichern
room-settings-saved = Gespeichert.
room-settings-back = Zurück zum Raum

devices-title = Ihre Geräte
devices-intro = Diese Browser sind mit Ihrem Konto angemeldet. Melden Sie alle ab, die Sie nicht kennen.
devices-this-device = dieses Gerät
devices-signed-in-at = angemeldet
devices-last-seen = zuletzt aktiv
devices-sign-out = Abmelden
devices-sign-out-others = Überall sonst abmelden

error-request-id = Anfrage-ID:
error-home = Zur Startseite
error-400-title = Die Anfrage wurde nicht verstanden
error-400-body = Bitte gehen Sie zurück und prüfen Sie Ihre Eingaben.
error-403-title = Nicht erlaubt
error-403-body = Sie haben keinen Zugriff auf diese Seite.
error-404-title = Seite nicht gefunden
error-404-body = Hier gibt es nichts, oder Sie dürfen es nicht sehen.
error-409-title = Existiert bereits
error-409-body = Etwas mit diesem Namen existiert bereits.
error-429-title = Zu viele Versuche
error-429-body = Bitte warten Sie etwas, bevor Sie es erneut versuchen.
error-500-title = Etwas ist schiefgelaufen
error-500-body = Der Fehler wurde protokolliert. Bitte versuchen Sie es gleich noch einmal; passiert es weiter, nennen Sie Ihrem Administrator die Anfrage-ID unten.
error-503-title = Vorübergehend nicht verfügbar
error-503-body = Confab erreicht gerade einen seiner Dienste nicht. Bitte versuchen Sie es gleich noch einmal.
error-csrf-title = Dieses Formular ist abgelaufen
error-csrf-body = Zu Ihrer Sicherheit konnte das Formular nicht angenommen werden. Laden Sie die Seite neu und versuchen Sie es erneut.
