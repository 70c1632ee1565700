//! Several PostgreSQL servers behind one URL, the way libpq takes them
//! (`postgres://escrow@db1:5432,db2:5432/escrow?target_session_attrs=read-write`).
//! sqlx 0.8 connects to one host only and ignores `target_session_attrs`,
//! so the store does what libpq would: it picks the first server that
//! answers (and, for `read-write`, accepts writes), points the pool at it,
//! refuses any new connection that lands on a standby, and moves the pool
//! to the promoted server when the one it uses fails over (pg_auto_failover,
//! Patroni or a manual promotion).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{Connection, PgConnection};

/// How often the pool's server is checked, and how long a check may take.
const WATCH_EVERY: Duration = Duration::from_millis(500);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The servers a multi-host URL names, in its order.
#[derive(Clone)]
pub(crate) struct Hosts {
    servers: Vec<(String, PgConnectOptions)>,
    read_write: bool,
}

fn config_error(why: String) -> sqlx::Error {
    sqlx::Error::Configuration(why.into())
}

impl Hosts {
    /// `None` for a URL with one host and no `target_session_attrs`: sqlx
    /// takes it as it is.
    pub fn parse(url: &str) -> Result<Option<Hosts>, sqlx::Error> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Ok(None);
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), authority),
        };
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut attrs = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| match p.split_once('=') {
                Some(("target_session_attrs", v)) => {
                    attrs = Some(v.to_string());
                    false
                }
                _ => true,
            })
            .collect();
        if !hosts.contains(',') && attrs.is_none() {
            return Ok(None);
        }
        let read_write = match attrs.as_deref() {
            None | Some("any") => false,
            Some("read-write") | Some("primary") => true,
            Some(other) => {
                return Err(config_error(format!(
                    "target_session_attrs={other} is not supported: use read-write (or any)"
                )))
            }
        };
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };
        let mut servers = Vec::new();
        for host in hosts.split(',') {
            if host.is_empty() {
                return Err(config_error(format!(
                    "the database URL's host list {hosts:?} has an empty entry"
                )));
            }
            let one = format!("{scheme}://{userinfo}{host}{path}{query}");
            servers.push((host.to_string(), PgConnectOptions::from_str(&one)?));
        }
        Ok(Some(Hosts {
            servers,
            read_write,
        }))
    }

    pub fn read_write(&self) -> bool {
        self.read_write
    }

    pub fn options(&self, i: usize) -> &PgConnectOptions {
        &self.servers[i].1
    }

    /// The host list as written, for messages.
    pub fn described(&self) -> String {
        self.servers
            .iter()
            .map(|(h, _)| h.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether server `i` answers now (and accepts writes, if asked for).
    async fn usable(&self, i: usize) -> Result<(), String> {
        let probe = async {
            let mut conn = PgConnection::connect_with(&self.servers[i].1)
                .await
                .map_err(|e| e.to_string())?;
            let writable = accepts_writes(&mut conn).await.map_err(|e| e.to_string());
            let _ = conn.close().await;
            match writable? {
                true => Ok(()),
                false if !self.read_write => Ok(()),
                false => Err("a standby (read-only)".to_string()),
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, probe)
            .await
            .map_err(|_| format!("no answer within {} s", PROBE_TIMEOUT.as_secs()))?
    }

    /// The first usable server, in the URL's order, or why none is.
    pub async fn pick(&self) -> Result<usize, String> {
        let mut why = Vec::new();
        for i in 0..self.servers.len() {
            match self.usable(i).await {
                Ok(()) => return Ok(i),
                Err(e) => why.push(format!("{}: {e}", self.servers[i].0)),
            }
        }
        Err(why.join("; "))
    }

    /// Keeps `pool` pointed at a usable server: every `WATCH_EVERY`, the
    /// current one is checked; when it fails, the first usable one takes
    /// its place (new connections go there; the dead ones fail their ping
    /// and are dropped). Ends when the pool is closed.
    pub fn watch(self, pool: PgPool, mut current: usize) {
        tokio::spawn(async move {
            let mut down_since_logged = false;
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                if pool.is_closed() {
                    return;
                }
                let Err(why) = self.usable(current).await else {
                    continue;
                };
                match self.pick().await {
                    Ok(next) if next != current => {
                        tracing::warn!(
                            from = %self.servers[current].0,
                            to = %self.servers[next].0,
                            reason = %why,
                            "database failover: new connections go to another server"
                        );
                        pool.set_connect_options(self.servers[next].1.clone());
                        current = next;
                        down_since_logged = false;
                    }
                    Ok(_) => down_since_logged = false,
                    Err(all) if !down_since_logged => {
                        tracing::error!(servers = %all, "no usable database server");
                        down_since_logged = true;
                    }
                    Err(_) => {}
                }
            }
        });
    }
}

/// A database URL as it may be shown: its password (if any) replaced by
/// `********`, nothing else changed. Works on multi-host URLs too, which a
/// URL parser refuses (the port of `db1:5432,db2` is not a number).
pub fn mask_password(text: &str) -> String {
    match userinfo(text) {
        Some((at, user, Some(password))) => {
            let from = at + user.len() + 1;
            format!(
                "{}********{}",
                &text[..from],
                &text[from + password.len()..]
            )
        }
        _ => text.to_string(),
    }
}

/// Gives a multi-host URL without a password the (already percent-encoded)
/// `password`; `None` when the URL has no user or already has a password.
pub fn with_encoded_password(text: &str, password: &str) -> Option<String> {
    match userinfo(text)? {
        (at, user, None) => Some(format!(
            "{}:{password}{}",
            &text[..at + user.len()],
            &text[at + user.len()..]
        )),
        _ => None,
    }
}

/// Where the user name starts, the user name, and the password, of
/// `scheme://user[:password]@hosts…`.
fn userinfo(text: &str) -> Option<(usize, &str, Option<&str>)> {
    let at = text.find("://")? + 3;
    let rest = &text[at..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (info, _) = rest[..end].rsplit_once('@')?;
    Some(match info.split_once(':') {
        Some((user, password)) => (at, user, Some(password)),
        None => (at, info, None),
    })
}

/// Whether the session may write: not a standby, not read-only by default.
pub(crate) async fn accepts_writes(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select not pg_is_in_recovery() and current_setting('transaction_read_only') = 'off'",
    )
    .fetch_one(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_becomes_one_server_per_host_without_the_session_attribute() {
        let hosts = Hosts::parse(
            "postgres://escrow@10.0.0.1:5432,db2:6543/books?sslmode=disable&target_session_attrs=read-write",
        )
        .unwrap()
        .unwrap();
        assert!(hosts.read_write());
        assert_eq!(hosts.described(), "10.0.0.1:5432,db2:6543");
        assert_eq!(hosts.options(0).get_host(), "10.0.0.1");
        assert_eq!(hosts.options(1).get_host(), "db2");
        assert_eq!(hosts.options(1).get_port(), 6543);
        assert_eq!(hosts.options(1).get_database(), Some("books"));
        assert_eq!(hosts.options(1).get_username(), "escrow");
    }

    #[test]
    fn one_host_without_session_attributes_is_left_to_sqlx() {
        assert!(Hosts::parse("postgres://escrow@db/books")
            .unwrap()
            .is_none());
        assert!(Hosts::parse("postgres://escrow@db/books?sslmode=disable")
            .unwrap()
            .is_none());
        // One host that must accept writes is checked like many.
        let one = Hosts::parse("postgres://db/books?target_session_attrs=read-write")
            .unwrap()
            .unwrap();
        assert_eq!(one.described(), "db");
    }

    #[test]
    fn a_password_is_masked_in_one_host_and_multi_host_urls_alike() {
        assert_eq!(
            mask_password("postgres://escrow:s3cr%2Ft@db1:5432,db2:5432/escrow?sslmode=require"),
            "postgres://escrow:********@db1:5432,db2:5432/escrow?sslmode=require"
        );
        assert_eq!(
            mask_password("postgres://escrow:p@ss@db/x"),
            "postgres://escrow:********@db/x"
        );
        assert_eq!(
            mask_password("postgres://escrow@a,b/x"),
            "postgres://escrow@a,b/x"
        );
        assert_eq!(mask_password("sqlite://escrow.db"), "sqlite://escrow.db");
        assert_eq!(
            with_encoded_password("postgres://escrow@a:1,b:2/x", "p%2Fw").as_deref(),
            Some("postgres://escrow:p%2Fw@a:1,b:2/x")
        );
        assert_eq!(with_encoded_password("postgres://e:p@a,b/x", "q"), None);
        assert_eq!(with_encoded_password("postgres://a,b/x", "q"), None);
    }

    #[test]
    fn an_unsupported_session_attribute_or_an_empty_host_is_refused_by_name() {
        let e = Hosts::parse("postgres://a,b/x?target_session_attrs=standby")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("target_session_attrs=standby"), "{e}");
        let e = Hosts::parse("postgres://a,,b/x").err().unwrap().to_string();
        assert!(e.contains("empty entry"), "{e}");
    }
}
