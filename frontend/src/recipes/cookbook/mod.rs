//! The slapos.cookbook recipes that instance profiles use most, done natively (no Python is
//! started per recipe): one file per recipe or family, each reproducing the options the real
//! recipe reads and sets and the files it writes in the partition. Hooked into the instance
//! recipes' lookup (`recipes/instance.rs`).

mod ca;
mod check;
mod cloudooo;
mod cloudooo_test;
pub mod command;
mod cron;
mod dropbear;
mod links;
mod logger;
mod passlib;
pub mod postgres;
pub mod promise;
mod publishurl;
mod random;
mod redis;
mod software;
pub mod state;
mod urlparse;
pub(crate) mod userinfo;
mod zabbix;
mod zero_knowledge;

use super::Part;
use crate::error::Result;

/// The cookbook recipes slapstore runs natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Password,
    Mac,
    RandomInteger,
    RandomTime,
    FreePort,
    Cron,
    CronD,
    SimpleLogger,
    Symlinks,
    UserInfo,
    CheckPortListening,
    PromisePlugin,
    Command,
    CertificateAuthority,
    CertificateRequest,
    Cloudooo,
    CloudoooTest,
    ZabbixAgent,
    Software,
    Postgres,
    RedisServer,
    PublishUrl,
    AddAuthorizedKey,
    CheckParameter,
    CheckUrlAvailable,
    UrlParse,
    ZeroKnowledgeRead,
}

/// The names under which [`lookup`] finds them, for error messages.
pub const SUPPORTED: &str = "`slapos.cookbook:generate.password`, `generate.mac`, \
    `random.integer`, `random.time`, `free_port`, `cron`, `cron.d`, `simplelogger`, `userinfo`, \
    `check_port_listening`, `promise.plugin`, `certificate_authority`, \
    `certificate_authority.request`, `postgres`, `redis.server`, `publishurl`, \
    `dropbear.add_authorized_key`, `generic.cloudooo`, `cloudooo.test`, `zabbixagent`, \
    `check_parameter`, `check_url_available`, `urlparse`, `zero-knowledge.read`, \
    `cns.recipe.symlink`, \
    `plone.recipe.command` and rapid-cdn's `software`";

/// The cookbook recipe of egg `egg` (normalised) and entry point `entry`.
pub fn lookup(egg: &str, entry: &str) -> Option<Kind> {
    match (egg, entry) {
        ("cns-recipe-symlink", "default") => return Some(Kind::Symlinks),
        ("plone-recipe-command", "default") => return Some(Kind::Command),
        ("software", "default") => return Some(Kind::Software),
        _ => {}
    }
    if egg != "slapos-cookbook" {
        return None;
    }
    Some(match entry {
        "cron" => Kind::Cron,
        "cron.d" => Kind::CronD,
        "simplelogger" => Kind::SimpleLogger,
        "userinfo" => Kind::UserInfo,
        "check_port_listening" => Kind::CheckPortListening,
        "promise.plugin" => Kind::PromisePlugin,
        "generate.password" => Kind::Password,
        "generate.mac" => Kind::Mac,
        "random.integer" => Kind::RandomInteger,
        "random.time" => Kind::RandomTime,
        "free_port" => Kind::FreePort,
        "certificate_authority" => Kind::CertificateAuthority,
        "certificate_authority.request" => Kind::CertificateRequest,
        "generic.cloudooo" => Kind::Cloudooo,
        "cloudooo.test" => Kind::CloudoooTest,
        "zabbixagent" => Kind::ZabbixAgent,
        "postgres" => Kind::Postgres,
        "redis.server" => Kind::RedisServer,
        "publishurl" => Kind::PublishUrl,
        "dropbear.add_authorized_key" => Kind::AddAuthorizedKey,
        "check_parameter" => Kind::CheckParameter,
        "check_url_available" => Kind::CheckUrlAvailable,
        "urlparse" => Kind::UrlParse,
        "zero-knowledge.read" => Kind::ZeroKnowledgeRead,
        _ => return None,
    })
}

/// Initialises a part of a cookbook recipe.
pub fn init(part: &mut Part, kind: Kind) -> Result<()> {
    match kind {
        Kind::Password => random::password(part),
        Kind::Mac => random::mac(part),
        Kind::RandomInteger => random::random_integer(part),
        Kind::RandomTime => random::random_time(part),
        Kind::FreePort => random::free_port(part),
        Kind::Cron => cron::cron(part),
        Kind::CronD => cron::cron_d(part),
        Kind::SimpleLogger => logger::simplelogger(part),
        Kind::Symlinks => links::symlinks(part),
        Kind::UserInfo => userinfo::userinfo(part),
        Kind::CheckPortListening => promise::check_port_listening(part),
        Kind::PromisePlugin => promise::promise_plugin(part),
        Kind::Command => command::command(part),
        Kind::CertificateAuthority => ca::authority(part),
        Kind::CertificateRequest => ca::request(part),
        Kind::Cloudooo => cloudooo::cloudooo(part),
        Kind::CloudoooTest => cloudooo_test::cloudooo_test(part),
        Kind::ZabbixAgent => zabbix::zabbixagent(part),
        Kind::Software => software::software(part),
        Kind::Postgres => postgres::postgres(part),
        Kind::RedisServer => redis::redis_server(part),
        Kind::PublishUrl => publishurl::publishurl(part),
        Kind::AddAuthorizedKey => dropbear::add_authorized_key(part),
        Kind::CheckParameter => check::check_parameter(part),
        Kind::CheckUrlAvailable => check::check_url_available(part),
        Kind::UrlParse => urlparse::urlparse(part),
        Kind::ZeroKnowledgeRead => zero_knowledge::read(part),
    }
}
