//! Reading closures from a local Nix database (`nix/var/nix/db/db.sqlite`),
//! read-only: the connection never takes a write lock, so Nix is never
//! locked out, and WAL mode lets it keep writing while we read.

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use thiserror::Error;

use crate::hash::Sha256Hash;
use crate::pathinfo::PathInfo;
use crate::store_path::{self, StorePath};

/// Why the database could not be read.
#[derive(Debug, Error)]
pub enum DbError {
    /// Opening or querying failed.
    #[error("cannot read the Nix database `{path}`: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// A root is not a valid path in this store.
    #[error("`{0}` is not a valid path in the store (not registered in its database)")]
    NotValid(String),
    /// A row holds something that is not a store path or hash.
    #[error("database `{path}` holds a malformed row for `{row}`: {why}")]
    Malformed {
        /// The database file.
        path: PathBuf,
        /// The path of the row.
        row: String,
        /// What is wrong.
        why: String,
    },
}

/// A read-only connection to a Nix store database.
pub struct NixDb {
    conn: Connection,
    path: PathBuf,
}

impl NixDb {
    /// The database of a store whose root is `root` (`/` for the system store,
    /// or a `--store` chroot directory).
    pub fn path_for_root(root: &Path) -> PathBuf {
        root.join("nix/var/nix/db/db.sqlite")
    }

    /// Opens `db` read-only.
    pub fn open(db: &Path) -> Result<Self, DbError> {
        let err = |source| DbError::Sqlite {
            path: db.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        // Read pages through a read-only memory map instead of copying them.
        conn.pragma_update(None, "mmap_size", 1i64 << 30)
            .map_err(err)?;
        // Fail now, not at the first query, when the file is not a Nix DB.
        conn.prepare("SELECT id, path, hash, narSize, deriver, ca FROM ValidPaths LIMIT 0")
            .and_then(|mut s| s.execute([]).map(|_| ()))
            .or_else(|e| match e {
                rusqlite::Error::ExecuteReturnedResults => Ok(()),
                other => Err(other),
            })
            .map_err(err)?;
        Ok(Self {
            conn,
            path: db.to_owned(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> DbError {
        DbError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Whether a store path is registered.
    pub fn is_valid(&self, path: &StorePath) -> Result<bool, DbError> {
        self.conn
            .query_row(
                "SELECT 1 FROM ValidPaths WHERE path = ?1",
                [path.as_str()],
                |_| Ok(()),
            )
            .map(|()| true)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(false),
                other => Err(self.err(other)),
            })
    }

    /// The recorded deriver of a path (absolute, as the database holds it), if any.
    pub fn deriver(&self, path: &StorePath) -> Result<Option<String>, DbError> {
        self.conn
            .query_row(
                "SELECT deriver FROM ValidPaths WHERE path = ?1",
                [path.as_str()],
                |row| row.get::<_, Option<String>>(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(self.err(other)),
            })
            .map(|d| d.filter(|d| !d.is_empty()))
    }

    /// The closure of `roots`, in one transaction so that the path rows and
    /// reference rows come from the same snapshot.
    pub fn closure(&self, roots: &[StorePath], store_dir: &str) -> Result<Vec<PathInfo>, DbError> {
        for r in roots {
            if !self.is_valid(r)? {
                return Err(DbError::NotValid(r.to_string()));
            }
        }
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(|e| self.err(e))?;
        let result = self.closure_in_tx(roots, store_dir);
        let _ = self.conn.execute_batch("COMMIT");
        result
    }

    fn closure_in_tx(
        &self,
        roots: &[StorePath],
        store_dir: &str,
    ) -> Result<Vec<PathInfo>, DbError> {
        // One recursive walk; each row carries its references as a list of
        // row ids, resolved to paths once every row is known.
        let sql = "WITH RECURSIVE closure(id) AS (
                SELECT id FROM ValidPaths WHERE path IN (SELECT value FROM json_each(?1))
                UNION
                SELECT r.reference FROM Refs r JOIN closure c ON r.referrer = c.id)
            SELECT v.id, v.path, v.hash, v.narSize, v.deriver, v.ca,
                   (SELECT group_concat(reference) FROM Refs WHERE referrer = v.id)
            FROM ValidPaths v JOIN closure USING (id)";
        let roots_json = serde_json::to_string(roots).unwrap_or_default();
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let mut by_id: FxHashMap<i64, usize> = FxHashMap::default();
        let mut infos = Vec::new();
        let mut ref_ids: Vec<Vec<i64>> = Vec::new();
        let mut rows = stmt.query([&roots_json]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let get = |e| self.err(e);
            // Borrow the text columns: only what is kept gets allocated.
            let text = |i: usize| -> Result<Option<&str>, DbError> {
                match row.get_ref(i).map_err(get)? {
                    rusqlite::types::ValueRef::Null => Ok(None),
                    v => v.as_str().map(Some).map_err(|e| self.err(e.into())),
                }
            };
            let id: i64 = row.get(0).map_err(get)?;
            let path = text(1)?.unwrap_or_default();
            let size: Option<i64> = row.get(3).map_err(get)?;
            let malformed = |why: String| DbError::Malformed {
                path: self.path.clone(),
                row: path.to_owned(),
                why,
            };
            let base =
                store_path::base_name_of(path, store_dir).map_err(|e| malformed(e.to_string()))?;
            let nar_hash = text(2)?
                .map(|h| {
                    h.parse::<Sha256Hash>()
                        .map_err(|e| malformed(e.to_string()))
                })
                .transpose()?;
            let deriver = text(4)?
                .filter(|d| !d.is_empty())
                .map(|d| {
                    store_path::base_name_of(d, store_dir).map_err(|e| malformed(e.to_string()))
                })
                .transpose()?;
            let ca = text(5)?.filter(|c| !c.is_empty()).map(str::to_owned);
            let refs: Vec<i64> = text(6)?
                .map(|r| {
                    r.split(',')
                        .map(|x| x.parse::<i64>().unwrap_or(-1))
                        .collect()
                })
                .unwrap_or_default();
            by_id.insert(id, infos.len());
            ref_ids.push(refs);
            infos.push(PathInfo {
                path: base,
                nar_hash,
                nar_size: size.and_then(|s| u64::try_from(s).ok()),
                references: Vec::new(),
                deriver,
                ca,
            });
        }
        for (i, refs) in ref_ids.into_iter().enumerate() {
            let mut list = Vec::with_capacity(refs.len());
            for r in refs {
                let target = by_id.get(&r).ok_or_else(|| DbError::Malformed {
                    path: self.path.clone(),
                    row: infos[i].path.to_string(),
                    why: format!("reference to unknown row `{r}`"),
                })?;
                list.push(infos[*target].path.clone());
            }
            list.sort_unstable();
            infos[i].references = list;
        }
        Ok(infos)
    }
}
