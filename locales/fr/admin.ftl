# L’administration (/admin/). Toutes les clés commencent par « admin- ».
admin-nav-link = Administration
admin-title = Administration
admin-nav-dashboard = Tableau de bord
admin-nav-users = Utilisateurs
admin-nav-groups = Groupes
admin-nav-rooms = Salons
admin-nav-messages = Messages
admin-nav-sessions = Sessions
admin-nav-attachments = Pièces jointes
admin-nav-audit = Journal d’audit

admin-dashboard-title = Tableau de bord
admin-count-users = Utilisateurs
admin-count-active-users = Utilisateurs actifs
admin-count-staff = Équipe
admin-count-rooms = Salons
admin-count-archived-rooms = Salons archivés
admin-count-messages = Messages
admin-count-sessions = Sessions ouvertes
admin-count-attachments = Pièces jointes
admin-recent-activity = Activité récente
admin-audit-all = Tout le journal d’audit

admin-search = Rechercher
admin-filter = Filtrer
admin-filter-active = Actif
admin-filter-staff = Équipe
admin-any = Tous
admin-yes = Oui
admin-no = Non
admin-sort = Tri
admin-sort-newest = Plus récents d’abord
admin-sort-oldest = Plus anciens d’abord
admin-sort-username = Par nom d’utilisateur
admin-from = Du
admin-until = Au
admin-next-page = Page suivante
admin-none = Rien ici.

admin-col-when = Quand
admin-col-actor = Qui
admin-col-action = Action
admin-col-target = Cible
admin-col-detail = Détail
admin-col-ip = Adresse
admin-col-status = État
admin-col-created = Créé
admin-col-last-login = Dernière connexion
admin-col-last-seen = Dernière activité
admin-col-name = Nom
admin-col-members = Membres
admin-col-kind = Type
admin-col-role = Rôle
admin-col-author = Auteur
admin-col-body = Message
admin-col-device = Appareil
admin-col-type = Type
admin-col-size = Taille (octets)

admin-active = actif
admin-inactive = inactif
admin-staff = Équipe
admin-superuser = Superutilisateur
admin-archived = Archivé
admin-edited = modifié
admin-deleted = supprimé
admin-ended = terminée
admin-kind-public = Public
admin-kind-private = Privé
admin-kind-direct = Discussion privée
admin-permissions = Permissions

admin-create = Créer
admin-save = Enregistrer
admin-saved = Enregistré.
admin-delete = Supprimer
admin-restore = Restaurer
admin-remove = Retirer
admin-confirm = Oui, continuer
admin-cancel = Annuler
admin-danger-zone = Attention

admin-users-title = Utilisateurs
admin-users-new = Nouvel utilisateur
admin-user-edit = Compte
admin-user-password = Mot de passe
admin-user-password-hint = Un nouveau mot de passe déconnecte l’utilisateur partout.
admin-user-password-set = Définir le mot de passe
admin-user-access = Groupes et permissions
admin-user-deactivate = Désactiver
admin-user-deactivate-confirm = Le compte sera aussitôt déconnecté partout et ne pourra plus se connecter avant d’être réactivé. Ses messages restent.
admin-user-reactivate = Réactiver

admin-groups-title = Groupes
admin-groups-new = Nouveau groupe

admin-rooms-title = Salons
admin-rooms-new = Nouveau salon
admin-rooms-edit = Salon
admin-rooms-archive = Archiver
admin-rooms-unarchive = Désarchiver
admin-rooms-set-member = Ajouter ou modifier un membre
admin-rooms-export = Exporter (JSON)
admin-rooms-delete = Supprimer le salon
admin-rooms-delete-confirm = Le salon, ses membres et tous ses messages seront supprimés définitivement. Pensez à l’archiver ou à l’exporter d’abord.

admin-messages-title = Messages
admin-messages-no-bodies = Vous voyez que les messages existent, pas ce qu’ils disent.
admin-messages-delete = Supprimer le message
admin-messages-delete-confirm = Le message disparaît aussitôt du salon pour tout le monde. Il peut être restauré ici.

admin-sessions-title = Sessions
admin-sessions-ended-too = Inclure les sessions terminées
admin-sessions-revoke = Déconnecter
admin-sessions-revoke-all = Déconnecter partout
admin-sessions-revoke-confirm = Cet appareil sera aussitôt déconnecté.

admin-attachments-title = Pièces jointes
admin-attachments-delete = Supprimer la pièce jointe
admin-attachments-delete-confirm = La pièce jointe sera supprimée définitivement.

admin-audit-title = Journal d’audit

admin-error-superuser-only = Seuls les superutilisateurs peuvent accorder ou retirer le statut de superutilisateur.
admin-error-own-status = Vous ne pouvez ni changer votre propre statut d’équipe ni vous désactiver.
admin-error-username-taken = Ce nom d’utilisateur est déjà pris.
admin-error-unknown-group = Ce groupe n’existe pas.
admin-error-unknown-permission = Cette permission n’existe pas.
admin-error-grant-own-only = Vous ne pouvez accorder que les permissions que vous détenez.
admin-error-group-taken = Un groupe porte déjà ce nom.
admin-error-group-name = Les noms de groupe comptent de 1 à 80 caractères.
admin-error-role = Choisissez l’un des rôles.
admin-error-no-such-user = Aucun utilisateur ne porte ce nom.
admin-error-no-such-room = Aucun salon n’a cette adresse.
admin-error-date = Utilisez une date comme 2026-11-27.
admin-error-general-room = Le salon général ne peut pas être supprimé.
