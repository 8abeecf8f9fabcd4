# Die Verwaltung (/admin/). Alle Schlüssel beginnen mit „admin-“.
admin-nav-link = Verwaltung
admin-title = Verwaltung
admin-nav-dashboard = Übersicht
admin-nav-users = Benutzer
admin-nav-groups = Gruppen
admin-nav-rooms = Räume
admin-nav-messages = Nachrichten
admin-nav-sessions = Sitzungen
admin-nav-attachments = Anhänge
admin-nav-audit = Prüfprotokoll

admin-dashboard-title = Übersicht
admin-count-users = Benutzer
admin-count-active-users = Aktive Benutzer
admin-count-staff = Mitarbeitende
admin-count-rooms = Räume
admin-count-archived-rooms = Archivierte Räume
admin-count-messages = Nachrichten
admin-count-sessions = Angemeldete Sitzungen
admin-count-attachments = Anhänge
admin-recent-activity = Letzte Aktivität
admin-audit-all = Das ganze Prüfprotokoll

admin-search = Suchen
admin-filter = Filtern
admin-filter-active = Aktiv
admin-filter-staff = Mitarbeitende
admin-any = Alle
admin-yes = Ja
admin-no = Nein
admin-sort = Sortierung
admin-sort-newest = Neueste zuerst
admin-sort-oldest = Älteste zuerst
admin-sort-username = Nach Benutzername
admin-from = Von
admin-until = Bis
admin-next-page = Nächste Seite
admin-none = Hier ist nichts.

admin-col-when = Wann
admin-col-actor = Wer
admin-col-action = Aktion
admin-col-target = Ziel
admin-col-detail = Einzelheiten
admin-col-ip = Adresse
admin-col-status = Status
admin-col-created = Erstellt
admin-col-last-login = Letzte Anmeldung
admin-col-last-seen = Zuletzt aktiv
admin-col-name = Name
admin-col-members = Mitglieder
admin-col-kind = Art
admin-col-role = Rolle
admin-col-author = Verfasser
admin-col-body = Nachricht
admin-col-device = Gerät
admin-col-type = Typ
admin-col-size = Größe (Bytes)

admin-active = aktiv
admin-inactive = inaktiv
admin-staff = Mitarbeiter
admin-superuser = Superuser
admin-archived = Archiviert
admin-edited = bearbeitet
admin-deleted = gelöscht
admin-ended = beendet
admin-kind-public = Öffentlich
admin-kind-private = Privat
admin-kind-direct = Privatchat
admin-permissions = Berechtigungen

admin-create = Erstellen
admin-save = Speichern
admin-saved = Gespeichert.
admin-delete = Löschen
admin-restore = Wiederherstellen
admin-remove = Entfernen
admin-confirm = Ja, ausführen
admin-cancel = Abbrechen
admin-danger-zone = Vorsicht

admin-users-title = Benutzer
admin-users-new = Neuer Benutzer
admin-user-edit = Konto
admin-user-password = Passwort
admin-user-password-hint = Ein neues Passwort meldet den Benutzer überall ab.
admin-user-password-set = Passwort setzen
admin-user-access = Gruppen und Berechtigungen
admin-user-deactivate = Deaktivieren
admin-user-deactivate-confirm = Das Konto wird sofort überall abgemeldet und kann sich erst nach der Reaktivierung wieder anmelden. Seine Nachrichten bleiben erhalten.
admin-user-reactivate = Reaktivieren

admin-groups-title = Gruppen
admin-groups-new = Neue Gruppe

admin-rooms-title = Räume
admin-rooms-new = Neuer Raum
admin-rooms-edit = Raum
admin-rooms-archive = Archivieren
admin-rooms-unarchive = Aus dem Archiv holen
admin-rooms-set-member = Mitglied hinzufügen oder ändern
admin-rooms-export = Exportieren (JSON)
admin-rooms-delete = Raum löschen
admin-rooms-delete-confirm = Der Raum, seine Mitglieder und alle seine Nachrichten werden endgültig gelöscht. Vielleicht besser erst archivieren oder exportieren.

admin-messages-title = Nachrichten
admin-messages-no-bodies = Sie sehen, dass Nachrichten existieren, nicht aber, was darin steht.
admin-messages-delete = Nachricht löschen
admin-messages-delete-confirm = Die Nachricht verschwindet sofort für alle aus dem Raum. Sie kann hier wiederhergestellt werden.

admin-sessions-title = Sitzungen
admin-sessions-ended-too = Beendete Sitzungen einschließen
admin-sessions-revoke = Abmelden
admin-sessions-revoke-all = Überall abmelden
admin-sessions-revoke-confirm = Dieses Gerät wird sofort abgemeldet.

admin-attachments-title = Anhänge
admin-attachments-delete = Anhang löschen
admin-attachments-delete-confirm = Der Anhang wird endgültig gelöscht.

admin-audit-title = Prüfprotokoll

admin-error-superuser-only = Nur Superuser können den Superuser-Status vergeben oder entziehen.
admin-error-own-status = Sie können Ihren eigenen Mitarbeiterstatus nicht ändern und sich nicht selbst deaktivieren.
admin-error-username-taken = Dieser Benutzername ist vergeben.
admin-error-unknown-group = Diese Gruppe gibt es nicht.
admin-error-unknown-permission = Diese Berechtigung gibt es nicht.
admin-error-grant-own-only = Sie können nur Berechtigungen vergeben, die Sie selbst haben.
admin-error-group-taken = Eine Gruppe mit diesem Namen gibt es schon.
admin-error-group-name = Gruppennamen haben 1–80 Zeichen.
admin-error-role = Wählen Sie eine der Rollen.
admin-error-no-such-user = Einen Benutzer mit diesem Namen gibt es nicht.
admin-error-no-such-room = Einen Raum mit dieser Adresse gibt es nicht.
admin-error-date = Geben Sie ein Datum wie 2026-11-27 ein.
admin-error-general-room = Der allgemeine Raum kann nicht gelöscht werden.
