//! http-app over real HTTP: a real server on port 0, a real database (SQLite and
//! PostgreSQL), the in-process bus, and a cookie-keeping client.

mod helpers;

mod account;
mod admin;
mod auth;
mod contract;
mod devices;
mod direct;
mod health;
mod i18n;
mod pages;
mod password_policy;
mod rooms;
mod security;
mod setup;
mod uploads;
