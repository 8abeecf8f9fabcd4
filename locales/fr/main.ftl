nav-label = Principal
nav-chat = Discussion
nav-rooms = Salons
nav-devices = Appareils
nav-sign-out = Se déconnecter
language-label = Langue
language-switch = Changer

field-username = Nom d’utilisateur
field-password = Mot de passe
field-password-confirm = Mot de passe (confirmation)
field-display-name = Nom affiché
field-slug = Adresse du salon
field-room-name = Nom
field-topic = Sujet
field-visibility = Qui peut le trouver
hint-username = 2 à 32 lettres, chiffres, « . », « _ » ou « - ».
hint-password = Au moins 8 caractères.
hint-slug = Minuscules, chiffres, « - » et « _ », comme dans #general.

login-title = Connexion
login-submit = Se connecter
login-invalid = Ce nom d’utilisateur et ce mot de passe ne correspondent à aucun compte actif.
login-throttled = Trop de tentatives échouées. Réessayez dans { $minutes } minutes.

setup-title = Créer l’administrateur
setup-intro = Confab n’a encore aucun compte. Cette page à usage unique crée le compte administrateur ; le lien cesse de fonctionner une fois utilisé.
setup-submit = Créer et se connecter

form-invalid = Veuillez vérifier le formulaire.
form-invalid-username = Les noms d’utilisateur comptent 2 à 32 lettres, chiffres, « . », « _ » ou « - ».
form-invalid-password = Le mot de passe doit compter au moins 8 caractères (et au plus 72 octets).
form-invalid-display-name = Le nom affiché compte 1 à 64 caractères.
form-invalid-slug = Les adresses de salon utilisent minuscules, chiffres, « - » et « _ », et commencent par une lettre ou un chiffre.
form-invalid-room-name = Le nom du salon compte 1 à 80 caractères.
form-invalid-topic = Le sujet compte au plus 250 caractères.
form-password-mismatch = Les deux mots de passe diffèrent.

app-rooms = Salons
app-browse-rooms = Parcourir ou créer des salons
app-pick-room = Choisissez un salon
app-message-label = Message
app-message-placeholder = Écrire un message…
app-send = Envoyer
app-connecting = Connexion…
app-connected = Connecté
app-offline = Hors ligne — reconnexion…
app-error-forbidden = Vous ne pouvez pas faire cela dans ce salon.
app-error-failed = Cela n’a pas fonctionné. Veuillez réessayer.
app-signed-in-elsewhere = Votre compte vient d’être connecté sur un autre appareil.
app-message-deleted = (message supprimé)
app-also-signed-in = Vous êtes aussi connecté sur :
app-manage-devices = Gérer vos appareils

rooms-title = Salons publics
rooms-none = Il n’y a pas encore de salon public.
rooms-more = Plus de salons
rooms-open = Ouvrir
rooms-join = Rejoindre
rooms-archived = archivé
rooms-create-title = Créer un salon
rooms-create-submit = Créer le salon
rooms-kind-public = Public : tout le monde peut le trouver et le rejoindre
rooms-kind-private = Privé : membres seulement, sur invitation
rooms-slug-taken = Un salon avec cette adresse existe déjà.

room-settings-title = Réglages du salon
room-settings-archived = Archivé (lecture seule, caché aux nouveaux membres)
room-settings-save = Enregistrer
room-settings-saved = Enregistré.
room-settings-back = Retour au salon

devices-title = Vos appareils
devices-intro = Ces navigateurs sont connectés à votre compte. Déconnectez ceux que vous ne reconnaissez pas.
devices-this-device = cet appareil
devices-signed-in-at = connecté le
devices-last-seen = dernière activité
devices-sign-out = Déconnecter
devices-sign-out-others = Déconnecter tous les autres

error-request-id = Identifiant de la requête :
error-home = Aller à la page d’accueil
error-400-title = Requête incomprise
error-400-body = Revenez en arrière et vérifiez votre saisie.
error-403-title = Non autorisé
error-403-body = Vous n’avez pas accès à cette page.
error-404-title = Page introuvable
error-404-body = Il n’y a rien ici, ou vous ne pouvez pas le voir.
error-409-title = Existe déjà
error-409-body = Un élément portant ce nom existe déjà.
error-429-title = Trop de tentatives
error-429-body = Patientez un peu avant de réessayer.
error-500-title = Une erreur est survenue
error-500-body = L’erreur a été enregistrée. Réessayez dans un instant ; si elle se reproduit, donnez l’identifiant de la requête ci-dessous à votre administrateur.
error-503-title = Temporairement indisponible
error-503-body = Confab ne parvient pas à joindre l’un de ses services. Réessayez dans un instant.
error-csrf-title = Ce formulaire a expiré
error-csrf-body = Pour votre sécurité, le formulaire n’a pas pu être accepté. Rechargez la page et réessayez.
