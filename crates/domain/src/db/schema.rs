//! Table definitions shared by both backends. Only types that SQLite and PostgreSQL both
//! map (BigInt, Integer, Text, Bool, Binary) appear here; see `migrations/`.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        username_key -> Text,
        display_name -> Text,
        password_hash -> Text,
        is_active -> Bool,
        is_staff -> Bool,
        is_superuser -> Bool,
        language -> Nullable<Text>,
        created_at -> BigInt,
        last_login_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    auth_groups (id) {
        id -> BigInt,
        name -> Text,
    }
}

diesel::table! {
    group_permissions (group_id, permission) {
        group_id -> BigInt,
        permission -> Text,
    }
}

diesel::table! {
    user_groups (user_id, group_id) {
        user_id -> BigInt,
        group_id -> BigInt,
    }
}

diesel::table! {
    user_permissions (user_id, permission) {
        user_id -> BigInt,
        permission -> Text,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        key_hash -> Text,
        user_id -> BigInt,
        user_agent -> Text,
        ip -> Text,
        data -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    rooms (id) {
        id -> BigInt,
        slug -> Text,
        name -> Text,
        topic -> Text,
        kind -> Text,
        archived -> Bool,
        created_by -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    memberships (room_id, user_id) {
        room_id -> BigInt,
        user_id -> BigInt,
        role -> Text,
        last_read_message_id -> Nullable<BigInt>,
        joined_at -> BigInt,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        room_id -> BigInt,
        author_id -> Nullable<BigInt>,
        kind -> Text,
        key_id -> Text,
        body -> Binary,
        client_id -> Nullable<Text>,
        created_at -> BigInt,
        edited_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    attachments (id) {
        id -> BigInt,
        room_id -> BigInt,
        message_id -> Nullable<BigInt>,
        uploader_id -> Nullable<BigInt>,
        content_type -> Text,
        size -> BigInt,
        sha256 -> Text,
        storage_key -> Text,
        thumbnail_key -> Nullable<Text>,
        width -> Nullable<Integer>,
        height -> Nullable<Integer>,
        created_at -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        actor_id -> Nullable<BigInt>,
        action -> Text,
        target_type -> Text,
        target_id -> Text,
        detail -> Text,
        ip -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    user_blocks (blocker_id, blocked_id) {
        blocker_id -> BigInt,
        blocked_id -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    mentions (message_id, user_id) {
        message_id -> BigInt,
        user_id -> BigInt,
        room_id -> BigInt,
    }
}

diesel::joinable!(group_permissions -> auth_groups (group_id));
diesel::joinable!(user_groups -> auth_groups (group_id));
diesel::joinable!(user_groups -> users (user_id));
diesel::joinable!(user_permissions -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(memberships -> rooms (room_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(messages -> rooms (room_id));
diesel::joinable!(messages -> users (author_id));
diesel::joinable!(attachments -> rooms (room_id));
diesel::joinable!(attachments -> messages (message_id));
diesel::joinable!(audit_log -> users (actor_id));
diesel::joinable!(mentions -> messages (message_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    auth_groups,
    group_permissions,
    user_groups,
    user_permissions,
    sessions,
    rooms,
    memberships,
    messages,
    attachments,
    audit_log,
    user_blocks,
    mentions,
);
