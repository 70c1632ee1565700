//! A scratch PostgreSQL database for one test, created empty on the server
//! `DATABASE_URL` names (default: the local test cluster) and dropped by
//! the test when it is done. Shared by the end-to-end test crates.

use sqlx::{Connection, Executor, PgConnection};

pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub struct ScratchPg {
    pub url: String,
    name: String,
}

impl ScratchPg {
    /// `name` must be unique among tests running at once (add the process
    /// id); a leftover database of that name from a killed run is dropped.
    pub async fn create(name: String) -> ScratchPg {
        let admin_url = admin_url();
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(format!("drop database if exists {name} with (force)").as_str())
            .await
            .unwrap();
        admin
            .execute(format!("create database {name}").as_str())
            .await
            .unwrap();
        let root = admin_url.rsplit_once('/').unwrap().0;
        ScratchPg {
            url: format!("{root}/{name}"),
            name,
        }
    }

    pub async fn drop(self) {
        let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
        admin
            .execute(format!("drop database if exists {} with (force)", self.name).as_str())
            .await
            .unwrap();
    }
}
