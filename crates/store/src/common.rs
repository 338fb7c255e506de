//! The [`Store`](crate::Store) implementation shared by SQLite and PostgreSQL.
//!
//! Both schemas have the same tables and columns, and both databases take `$N`
//! parameters, so the statements are written once. They are expanded per database by
//! [`impl_store!`] (sqlx's typed pools have different types, and a generic version would
//! drown in `Executor`/`Encode`/`Decode` bounds). What differs lives in the store types
//! themselves: how a write transaction starts (`write`), where reads go (`read`), how the
//! next job is picked under concurrency (`pick_job`), and the row-locking clause
//! (`FOR_UPDATE`, empty on SQLite where the single writer already excludes everyone).

/// The columns of a [`Run`](crate::Run), joined with its repository and pipeline names.
macro_rules! run_select {
    () => {
        "SELECT r.id, r.pipeline_id, rp.name AS repo_name, p.name AS pipeline_name, r.number, \
         r.state, r.event, r.git_ref, r.commit_id, r.cause, r.params, r.plan_json, \
         r.pipeline_path, r.pipeline_text, r.error, r.concurrency_group, r.concurrency_limit, \
         r.rerun_of, r.cancel_requested, r.created_at, r.started_at, r.finished_at \
         FROM runs r JOIN pipelines p ON p.id = r.pipeline_id JOIN repos rp ON rp.id = r.repo_id"
    };
}

/// The state words of final runs, as an SQL list.
macro_rules! final_run_states {
    () => {
        "'succeeded', 'failed', 'cancelled', 'errored'"
    };
}

/// The columns of a [`Job`](crate::Job).
macro_rules! job_cols {
    () => {
        "run_id, idx, name, job_key, needs, runs_on, state, attempt, lease_id, lease_deadline, \
         executor, message, exit_code, manifest_json, queued_at, started_at, finished_at, \
         cancel_requested, approved, approval_by, approval_at"
    };
}

/// The columns of a [`Repo`](crate::Repo).
macro_rules! repo_cols {
    () => {
        "id, name, url, webhook_secret, created_at, last_error, last_polled_at, next_poll_at"
    };
}

/// The columns of a [`Token`](crate::Token).
macro_rules! token_cols {
    () => {
        "id, name, kind, hash, created_at, revoked_at"
    };
}

/// The columns of a [`CacheEntry`](crate::CacheEntry) but its repository's name, for
/// `RETURNING` (which SQLite only lets name the table's own columns, unqualified).
macro_rules! cache_cols {
    () => {
        "id, cache_key, manifest_json, files, size, run_id, created_at, last_used_at"
    };
}

/// The columns of a [`CacheEntry`](crate::CacheEntry) in `caches c`, with its
/// repository's name (a subquery, so that a row lock takes only the entry).
macro_rules! cache_select {
    () => {
        "SELECT c.id, c.cache_key, c.manifest_json, c.files, c.size, c.run_id, c.created_at, \
         c.last_used_at, (SELECT name FROM repos WHERE id = c.repo_id) AS repo_name FROM caches c"
    };
}

/// The columns of a [`User`](crate::User).
macro_rules! user_cols {
    () => {
        "id, name, password_hash, role, created_at, updated_at, disabled_at"
    };
}

/// Implements [`Store`](crate::Store) for `$store` over database `$db`. The type must
/// provide `async fn write(&self) -> Result<Transaction<'static, $db>, StoreError>`,
/// `fn read(&self) -> &Pool<$db>`, `fn write_pool(&self) -> &Pool<$db>`,
/// `async fn pick_job(tx, labels_json) -> Result<Option<(i64, i64)>, StoreError>`,
/// `async fn close_pools(&self)` and `const FOR_UPDATE: &str`.
macro_rules! impl_store {
    ($store:ty, $db:ty) => {
        type DbRow = <$db as sqlx::Database>::Row;

        /// One column of a row, with errors as [`StoreError`]s.
        fn get<'r, T>(row: &'r DbRow, column: &str) -> Result<T, StoreError>
        where
            T: sqlx::Decode<'r, $db> + sqlx::Type<$db>,
        {
            sqlx::Row::try_get(row, column).map_err($crate::codec::db)
        }

        fn repo_row(row: &DbRow) -> Result<Repo, StoreError> {
            Ok(Repo {
                id: get(row, "id")?,
                name: get(row, "name")?,
                url: get(row, "url")?,
                webhook_secret: get(row, "webhook_secret")?,
                created_at: get(row, "created_at")?,
                last_error: get(row, "last_error")?,
                last_polled_at: get(row, "last_polled_at")?,
                next_poll_at: get(row, "next_poll_at")?,
            })
        }

        fn pipeline_row(row: &DbRow) -> Result<Pipeline, StoreError> {
            Ok(Pipeline {
                id: get(row, "id")?,
                repo_id: get(row, "repo_id")?,
                name: get(row, "name")?,
                path: get(row, "path")?,
            })
        }

        fn run_row(row: &DbRow) -> Result<Run, StoreError> {
            let path: Option<String> = get(row, "pipeline_path")?;
            let text: Option<String> = get(row, "pipeline_text")?;
            let group: Option<String> = get(row, "concurrency_group")?;
            let limit: Option<i64> = get(row, "concurrency_limit")?;
            let concurrency = match (group, limit) {
                (Some(group), Some(limit)) => {
                    Some((group, $crate::codec::narrow(limit, "concurrency limit")?))
                }
                _ => None,
            };
            Ok(Run {
                id: get(row, "id")?,
                pipeline_id: get(row, "pipeline_id")?,
                repo: get(row, "repo_name")?,
                pipeline: get(row, "pipeline_name")?,
                number: get(row, "number")?,
                state: $crate::codec::run_state(&get::<String>(row, "state")?)?,
                event: get(row, "event")?,
                git_ref: get(row, "git_ref")?,
                commit: get(row, "commit_id")?,
                cause: get(row, "cause")?,
                params: $crate::codec::json_map(&get::<String>(row, "params")?)?,
                plan_json: get(row, "plan_json")?,
                pipeline_file: path.zip(text),
                error: get(row, "error")?,
                concurrency,
                rerun_of: get(row, "rerun_of")?,
                cancel_requested: get(row, "cancel_requested")?,
                created_at: get(row, "created_at")?,
                started_at: get(row, "started_at")?,
                finished_at: get(row, "finished_at")?,
            })
        }

        fn job_row(row: &DbRow) -> Result<Job, StoreError> {
            let exit_code: Option<i64> = get(row, "exit_code")?;
            Ok(Job {
                run_id: get(row, "run_id")?,
                idx: get(row, "idx")?,
                name: get(row, "name")?,
                key: get(row, "job_key")?,
                needs: $crate::codec::json_list(&get::<String>(row, "needs")?)?,
                runs_on: $crate::codec::json_map(&get::<String>(row, "runs_on")?)?,
                state: $crate::codec::job_state(&get::<String>(row, "state")?)?,
                attempt: $crate::codec::narrow(get(row, "attempt")?, "attempt")?,
                lease_id: get(row, "lease_id")?,
                lease_deadline: get(row, "lease_deadline")?,
                executor: get(row, "executor")?,
                message: get(row, "message")?,
                exit_code: exit_code
                    .map(|c| $crate::codec::narrow(c, "exit code"))
                    .transpose()?,
                manifest_json: get(row, "manifest_json")?,
                queued_at: get(row, "queued_at")?,
                started_at: get(row, "started_at")?,
                finished_at: get(row, "finished_at")?,
                cancel_requested: get(row, "cancel_requested")?,
                approval: match get::<Option<bool>>(row, "approved")? {
                    Some(approved) => Some(Approval {
                        approved,
                        by: get::<Option<String>>(row, "approval_by")?.unwrap_or_default(),
                        at: get::<Option<i64>>(row, "approval_at")?.unwrap_or_default(),
                    }),
                    None => None,
                },
            })
        }

        fn token_row(row: &DbRow) -> Result<Token, StoreError> {
            Ok(Token {
                id: get(row, "id")?,
                name: get(row, "name")?,
                kind: get(row, "kind")?,
                hash: get(row, "hash")?,
                created_at: get(row, "created_at")?,
                revoked_at: get(row, "revoked_at")?,
            })
        }

        /// A cache entry of repository `repo` (`None`: the row's `repo_name`).
        fn cache_row(row: &DbRow, repo: Option<&str>) -> Result<CacheEntry, StoreError> {
            Ok(CacheEntry {
                id: get(row, "id")?,
                repo: match repo {
                    Some(name) => name.to_owned(),
                    None => get(row, "repo_name")?,
                },
                key: get(row, "cache_key")?,
                manifest_json: get(row, "manifest_json")?,
                files: get(row, "files")?,
                size: get(row, "size")?,
                run_id: get(row, "run_id")?,
                created_at: get(row, "created_at")?,
                last_used_at: get(row, "last_used_at")?,
            })
        }

        fn user_row(row: &DbRow) -> Result<User, StoreError> {
            Ok(User {
                id: get(row, "id")?,
                name: get(row, "name")?,
                password_hash: get(row, "password_hash")?,
                role: $crate::codec::role(&get::<String>(row, "role")?)?,
                created_at: get(row, "created_at")?,
                updated_at: get(row, "updated_at")?,
                disabled_at: get(row, "disabled_at")?,
            })
        }

        /// Runs `UPDATE users SET … WHERE name = $1 RETURNING …` (the statement text
        /// without the `RETURNING` part); `NotFound` when no user has that name.
        async fn update_user(
            pool: &sqlx::Pool<$db>,
            name: &str,
            update: sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments>,
        ) -> Result<User, StoreError> {
            let row = update
                .fetch_optional(pool)
                .await
                .map_err($crate::codec::db)?
                .ok_or_else(|| StoreError::NotFound(format!("user {name}")))?;
            user_row(&row)
        }

        /// A run read inside a transaction (sees the transaction's own changes).
        async fn run_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            id: i64,
        ) -> Result<Run, StoreError> {
            let row = sqlx::query(concat!($crate::common::run_select!(), " WHERE r.id = $1"))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .map_err($crate::codec::db)?
                .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
            run_row(&row)
        }

        #[async_trait::async_trait]
        impl Store for $store {
            async fn create_repo(&self, repo: NewRepo) -> Result<Repo, StoreError> {
                let row = sqlx::query(concat!(
                    "INSERT INTO repos (name, url, webhook_secret, created_at) \
                     VALUES ($1, $2, $3, $4) RETURNING ",
                    $crate::common::repo_cols!()
                ))
                .bind(&repo.name)
                .bind(&repo.url)
                .bind(&repo.webhook_secret)
                .bind($crate::now_millis())
                .fetch_one(self.write_pool())
                .await
                .map_err(|e| {
                    $crate::codec::constraint(e, &format!("repository {}", repo.name), "repository")
                })?;
                repo_row(&row)
            }

            async fn repo_by_name(&self, name: &str) -> Result<Repo, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::repo_cols!(),
                    " FROM repos WHERE name = $1"
                ))
                .bind(name)
                .fetch_optional(self.read())
                .await
                .map_err($crate::codec::db)?
                .ok_or_else(|| StoreError::NotFound(format!("repository {name}")))?;
                repo_row(&row)
            }

            async fn list_repos(&self) -> Result<Vec<Repo>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::repo_cols!(),
                    " FROM repos ORDER BY name"
                ))
                .fetch_all(self.read())
                .await
                .map_err($crate::codec::db)?;
                rows.iter().map(repo_row).collect()
            }

            async fn record_poll(
                &self,
                repo_id: i64,
                at: Millis,
                error: Option<String>,
                next_poll_at: Millis,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE repos SET last_polled_at = $2, last_error = $3, next_poll_at = $4 \
                     WHERE id = $1",
                )
                .bind(repo_id)
                .bind(at)
                .bind(error)
                .bind(next_poll_at)
                .execute(self.write_pool())
                .await
                .map_err($crate::codec::db)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("repository id {repo_id}")));
                }
                Ok(())
            }

            async fn ref_heads(
                &self,
                repo_id: i64,
            ) -> Result<BTreeMap<String, String>, StoreError> {
                let rows = sqlx::query(
                    "SELECT git_ref, commit_id FROM ref_heads WHERE repo_id = $1",
                )
                .bind(repo_id)
                .fetch_all(self.read())
                .await
                .map_err($crate::codec::db)?;
                rows.iter()
                    .map(|row| Ok((get(row, "git_ref")?, get(row, "commit_id")?)))
                    .collect()
            }

            async fn set_ref_head(
                &self,
                repo_id: i64,
                git_ref: &str,
                commit: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO ref_heads (repo_id, git_ref, commit_id) VALUES ($1, $2, $3) \
                     ON CONFLICT (repo_id, git_ref) DO UPDATE SET commit_id = excluded.commit_id",
                )
                .bind(repo_id)
                .bind(git_ref)
                .bind(commit)
                .execute(self.write_pool())
                .await
                .map_err(|e| $crate::codec::constraint(e, "ref head", &format!("repository id {repo_id}")))?;
                Ok(())
            }

            async fn ensure_pipeline(
                &self,
                repo_id: i64,
                name: &str,
                path: &str,
            ) -> Result<Pipeline, StoreError> {
                let mut tx = self.write().await?;
                // Only an actual change writes: an unconditional upsert would lock and
                // rewrite the row on every poll.
                let row = sqlx::query(
                    "INSERT INTO pipelines (repo_id, name, path) VALUES ($1, $2, $3) \
                     ON CONFLICT (repo_id, name) DO UPDATE SET path = excluded.path \
                     WHERE pipelines.path <> excluded.path \
                     RETURNING id, repo_id, name, path",
                )
                .bind(repo_id)
                .bind(name)
                .bind(path)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| $crate::codec::constraint(e, "pipeline", &format!("repository id {repo_id}")))?;
                let row = match row {
                    Some(row) => row,
                    None => sqlx::query(
                        "SELECT id, repo_id, name, path FROM pipelines \
                         WHERE repo_id = $1 AND name = $2",
                    )
                    .bind(repo_id)
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::codec::db)?,
                };
                let pipeline = pipeline_row(&row)?;
                tx.commit().await.map_err($crate::codec::db)?;
                Ok(pipeline)
            }

            async fn list_pipelines(
                &self,
                repo_id: Option<i64>,
            ) -> Result<Vec<Pipeline>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, repo_id, name, path FROM pipelines \
                     WHERE $1 IS NULL OR repo_id = $1 ORDER BY repo_id, name",
                )
                .bind(repo_id)
                .fetch_all(self.read())
                .await
                .map_err($crate::codec::db)?;
                rows.iter().map(pipeline_row).collect()
            }

            async fn create_run(
                &self,
                run: NewRun,
                now: Millis,
            ) -> Result<Option<Run>, StoreError> {
                let mut tx = self.write().await?;
                // The counter row is locked until commit: concurrent creates for the same
                // pipeline queue here and take consecutive numbers.
                let counter = sqlx::query(
                    "UPDATE pipelines SET last_number = last_number + 1 WHERE id = $1 \
                     RETURNING last_number, repo_id",
                )
                .bind(run.pipeline_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::codec::db)?
                .ok_or_else(|| StoreError::NotFound(format!("pipeline id {}", run.pipeline_id)))?;
                let number: i64 = get(&counter, "last_number")?;
                let repo_id: i64 = get(&counter, "repo_id")?;
                let (path, text) = run.pipeline_file.clone().unzip();
                let (group, limit) = run.concurrency.clone().unzip();
                let finished_at = run.state.is_final().then_some(now);
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO runs (pipeline_id, repo_id, number, state, event, git_ref, \
                     commit_id, cause, params, plan_json, pipeline_path, pipeline_text, error, \
                     concurrency_group, concurrency_limit, rerun_of, dedup_key, created_at, \
                     finished_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18, $19) \
                     ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(run.pipeline_id)
                .bind(repo_id)
                .bind(number)
                .bind(run.state.as_str())
                .bind(&run.event)
                .bind(&run.git_ref)
                .bind(&run.commit)
                .bind(&run.cause)
                .bind($crate::codec::map_json(&run.params))
                .bind(&run.plan_json)
                .bind(path)
                .bind(text)
                .bind(&run.error)
                .bind(group)
                .bind(limit.map(i64::from))
                .bind(run.rerun_of)
                .bind(&run.dedup_key)
                .bind(now)
                .bind(finished_at)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| {
                    $crate::codec::constraint(e, "run", &format!("run {:?}", run.rerun_of))
                })?;
                let Some(id) = id else {
                    // A run with this dedup key exists: give the number back.
                    tx.rollback().await.map_err($crate::codec::db)?;
                    return Ok(None);
                };
                for job in &run.jobs {
                    let queued_at = (job.state == JobState::Queued).then_some(now);
                    let finished_at = job.state.is_final().then_some(now);
                    sqlx::query(
                        "INSERT INTO jobs (run_id, idx, name, job_key, needs, runs_on, state, \
                         message, manifest_json, queued_at, finished_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(id)
                    .bind(job.idx)
                    .bind(&job.name)
                    .bind(&job.key)
                    .bind($crate::codec::list_json(&job.needs))
                    .bind($crate::codec::map_json(&job.runs_on))
                    .bind(job.state.as_str())
                    .bind(&job.message)
                    .bind(&job.manifest_json)
                    .bind(queued_at)
                    .bind(finished_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        $crate::codec::constraint(e, &format!("job {} of the run", job.idx), "run")
                    })?;
                }
                let created = run_in(&mut tx, id).await?;
                tx.commit().await.map_err($crate::codec::db)?;
                Ok(Some(created))
            }

            async fn run(&self, id: i64) -> Result<Run, StoreError> {
                let row = sqlx::query(concat!($crate::common::run_select!(), " WHERE r.id = $1"))
                    .bind(id)
                    .fetch_optional(self.read())
                    .await
                    .map_err($crate::codec::db)?
                    .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?;
                run_row(&row)
            }

            async fn run_by_number(
                &self,
                repo: &str,
                pipeline: &str,
                number: i64,
            ) -> Result<Run, StoreError> {
                let row = sqlx::query(concat!(
                    $crate::common::run_select!(),
                    " WHERE rp.name = $1 AND p.name = $2 AND r.number = $3"
                ))
                .bind(repo)
                .bind(pipeline)
                .bind(number)
                .fetch_optional(self.read())
                .await
                .map_err($crate::codec::db)?
                .ok_or_else(|| {
                    StoreError::NotFound(format!("run #{number} of {repo}/{pipeline}"))
                })?;
                run_row(&row)
            }

            async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, StoreError> {
                let mut q = sqlx::QueryBuilder::<$db>::new(concat!($crate::common::run_select!(), " WHERE TRUE"));
                match (&filter.repo, &filter.pipeline) {
                    (Some(repo), Some(pipeline)) => {
                        q.push(
                            " AND r.pipeline_id = (SELECT p2.id FROM pipelines p2 \
                             JOIN repos r2 ON r2.id = p2.repo_id WHERE r2.name = ",
                        )
                        .push_bind(repo.clone())
                        .push(" AND p2.name = ")
                        .push_bind(pipeline.clone())
                        .push(")");
                    }
                    (Some(repo), None) => {
                        q.push(" AND r.repo_id = (SELECT id FROM repos WHERE name = ")
                            .push_bind(repo.clone())
                            .push(")");
                    }
                    (None, Some(pipeline)) => {
                        q.push(" AND p.name = ").push_bind(pipeline.clone());
                    }
                    (None, None) => {}
                }
                if !filter.states.is_empty() {
                    q.push(" AND r.state IN (");
                    let mut list = q.separated(", ");
                    for state in &filter.states {
                        list.push_bind(state.as_str());
                    }
                    q.push(")");
                }
                if let Some(before) = filter.before {
                    q.push(" AND r.id < ").push_bind(before);
                }
                q.push(" ORDER BY r.id DESC LIMIT ")
                    .push_bind($crate::codec::page_size(filter.limit));
                let rows = q.build().fetch_all(self.read()).await.map_err($crate::codec::db)?;
                rows.iter().map(run_row).collect()
            }

            async fn previous_finished_run(
                &self,
                pipeline_id: i64,
                before: i64,
            ) -> Result<Option<Run>, StoreError> {
                let row = sqlx::query(concat!(
                    $crate::common::run_select!(),
                    " WHERE r.pipeline_id = $1 AND r.number < $2 AND r.state IN (",
                    $crate::common::final_run_states!(),
                    ") ORDER BY r.number DESC LIMIT 1"
                ))
                .bind(pipeline_id)
                .bind(before)
                .fetch_optional(self.read())
                .await
                .map_err($crate::codec::db)?;
                row.as_ref().map(run_row).transpose()
            }

            async fn active_runs(&self) -> Result<Vec<Run>, StoreError> {
                let rows = sqlx::query(concat!(
                    $crate::common::run_select!(),
                    " WHERE r.state IN ('queued', 'running') ORDER BY r.id"
                ))
                .fetch_all(self.read())
                .await
                .map_err($crate::codec::db)?;
                rows.iter().map(run_row).collect()
            }

            async fn set_run_state(
                &self,
                run_id: i64,
                state: RunState,
                now: Millis,
            ) -> Result<(), StoreError> {
                // The first start and the first finish are the ones that count.
                let (sql, stamp) = if state == RunState::Running {
                    (
                        "UPDATE runs SET state = $2, started_at = COALESCE(started_at, $3) \
                         WHERE id = $1",
                        true,
                    )
                } else if state.is_final() {
                    (
                        "UPDATE runs SET state = $2, finished_at = COALESCE(finished_at, $3) \
                         WHERE id = $1",
                        true,
                    )
                } else {
                    ("UPDATE runs SET state = $2 WHERE id = $1", false)
                };
                let mut query = sqlx::query(sql).bind(run_id).bind(state.as_str());
                if stamp {
                    query = query.bind(now);
                }
                let done = query
                    .execute(self.write_pool())
                    .await
                    .map_err($crate::codec::db)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("run {run_id}")));
                }
                Ok(())
            }

            async fn request_cancel(&self, run_id: i64, now: Millis) -> Result<Run, StoreError> {
                let mut tx = self.write().await?;
                // Jobs before the run row, in index order: the order lease_next locks in.
                let lock = format!(
                    "SELECT idx FROM jobs WHERE run_id = $1 ORDER BY idx{}",
                    Self::FOR_UPDATE
                );
                sqlx::query(sqlx::AssertSqlSafe(lock))
                    .bind(run_id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::codec::db)?;
                let run = run_in(&mut tx, run_id).await?;
                if run.state.is_final() {
                    return Ok(run);
                }
                sqlx::query(
                    "UPDATE jobs SET state = 'cancelled', message = 'cancelled before it started', \
                     finished_at = $2 WHERE run_id = $1 AND state IN ('pending', 'queued', 'waiting')",
                )
                .bind(run_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err($crate::codec::db)?;
                let running = sqlx::query(
                    "UPDATE jobs SET cancel_requested = TRUE WHERE run_id = $1 AND state = 'running'",
                )
                .bind(run_id)
                .execute(&mut *tx)
                .await
                .map_err($crate::codec::db)?
                .rows_affected();
                // With nothing running, nothing will report back: the run is over now.
                let query = if running == 0 {
                    sqlx::query(
                        "UPDATE runs SET cancel_requested = TRUE, state = 'cancelled', \
                         finished_at = COALESCE(finished_at, $2) WHERE id = $1",
                    )
                    .bind(run_id)
                    .bind(now)
                } else {
                    sqlx::query("UPDATE runs SET cancel_requested = TRUE WHERE id = $1").bind(run_id)
                };
                query
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::codec::db)?;
                let run = run_in(&mut tx, run_id).await?;
                tx.commit().await.map_err($crate::codec::db)?;
                Ok(run)
            }

            async fn jobs(&self, run_id: i64) -> Result<Vec<Job>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::job_cols!(),
                    " FROM jobs WHERE run_id = $1 ORDER BY idx"
                ))
                .bind(run_id)
                .fetch_all(self.read())
                .await
                .map_err($crate::codec::db)?;
                rows.iter().map(job_row).collect()
            }

            async fn transition_jobs(
                &self,
                run_id: i64,
                changes: &[JobTransition],
                now: Millis,
            ) -> Result<(), StoreError> {
                let mut tx = self.write().await?;
                // In plan-index order, the order every other writer locks jobs in.
                let mut changes: Vec<&JobTransition> = changes.iter().collect();
                changes.sort_by_key(|c| c.idx);
                for change in changes {
                    // `$5`, the new state, only where the statement does not imply it.
                    let (sql, state) = match change.state {
                        JobState::Queued => (
                            "UPDATE jobs SET state = 'queued', queued_at = COALESCE(queued_at, $3), \
                             message = COALESCE($4, message) \
                             WHERE run_id = $1 AND idx = $2 AND state = 'pending'",
                            None,
                        ),
                        JobState::Pending => (
                            "UPDATE jobs SET state = 'pending', queued_at = COALESCE(queued_at, $3), \
                             message = COALESCE($4, message) \
                             WHERE run_id = $1 AND idx = $2 AND state = 'queued'",
                            None,
                        ),
                        // Nothing records when the wait began; `$3` (now) is only mentioned so
                        // that both databases take the same four bound parameters.
                        JobState::Waiting => (
                            "UPDATE jobs SET state = 'waiting', message = COALESCE($4, message) \
                             WHERE run_id = $1 AND idx = $2 AND state = 'pending' AND $3 = $3",
                            None,
                        ),
                        // Only a lease starts a job.
                        JobState::Running => continue,
                        // Skipped, Cancelled, or any other outcome decided without running.
                        other => (
                            "UPDATE jobs SET state = $5, message = $4, finished_at = $3 \
                             WHERE run_id = $1 AND idx = $2 \
                             AND state IN ('pending', 'queued', 'waiting')",
                            Some(other.as_str()),
                        ),
                    };
                    let mut query = sqlx::query(sql)
                        .bind(run_id)
                        .bind(change.idx)
                        .bind(now)
                        .bind(&change.message);
                    if let Some(state) = state {
                        query = query.bind(state);
                    }
                    query.execute(&mut *tx).await.map_err($crate::codec::db)?;
                }
                tx.commit().await.map_err($crate::codec::db)?;
                Ok(())
            }

            async fn answer_approval(
                &self,
                run_id: i64,
                idx: i64,
                approval: &Approval,
                message: Option<&str>,
            ) -> Result<ApprovalOutcome, StoreError> {
                // One statement: of two answers at once, only the first finds it waiting.
                let sql = if approval.approved {
                    concat!(
                        "UPDATE jobs SET state = 'queued', queued_at = COALESCE(queued_at, $3), \
                         approved = TRUE, approval_by = $4, approval_at = $3, \
                         message = COALESCE($5, message) \
                         WHERE run_id = $1 AND idx = $2 AND state = 'waiting' RETURNING ",
                        $crate::common::job_cols!()
                    )
                } else {
                    concat!(
                        "UPDATE jobs SET state = 'failed', finished_at = $3, \
                         approved = FALSE, approval_by = $4, approval_at = $3, \
                         message = COALESCE($5, message) \
                         WHERE run_id = $1 AND idx = $2 AND state = 'waiting' RETURNING ",
                        $crate::common::job_cols!()
                    )
                };
                let row = sqlx::query(sql)
                    .bind(run_id)
                    .bind(idx)
                    .bind(approval.at)
                    .bind(&approval.by)
                    .bind(message)
                    .fetch_optional(self.write_pool())
                    .await
                    .map_err($crate::codec::db)?;
                if let Some(row) = row {
                    return Ok(ApprovalOutcome::Answered(job_row(&row)?));
                }
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::job_cols!(),
                    " FROM jobs WHERE run_id = $1 AND idx = $2"
                ))
                .bind(run_id)
                .bind(idx)
                .fetch_optional(self.read())
                .await
                .map_err($crate::codec::db)?
                .ok_or_else(|| StoreError::NotFound(format!("job {idx} of run {run_id}")))?;
                Ok(ApprovalOutcome::NotWaiting(job_row(&row)?))
            }

            async fn lease_next(
                &self,
                executor: &str,
                labels: &BTreeMap<String, String>,
                lease_id: &str,
                now: Millis,
                ttl_ms: i64,
            ) -> Result<Option<Leased>, StoreError> {
                let mut tx = self.write().await?;
                let Some((run_id, idx)) = Self::pick_job(&mut tx, &$crate::codec::map_json(labels)).await?
                else {
                    return Ok(None);
                };
                let row = sqlx::query(concat!(
                    "UPDATE jobs SET state = 'running', lease_id = $3, attempt = attempt + 1, \
                     executor = $4, lease_deadline = $5, started_at = $6, exit_code = NULL \
                     WHERE run_id = $1 AND idx = $2 AND state = 'queued' RETURNING ",
                    $crate::common::job_cols!()
                ))
                .bind(run_id)
                .bind(idx)
                .bind(lease_id)
                .bind(executor)
                .bind(now.saturating_add(ttl_ms))
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| $crate::codec::constraint(e, &format!("lease {lease_id}"), "job"))?;
                let job = job_row(&row)?;
                sqlx::query(
                    "UPDATE runs SET state = CASE WHEN state = 'queued' THEN 'running' ELSE state END, \
                     started_at = COALESCE(started_at, $2) WHERE id = $1",
                )
                .bind(run_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err($crate::codec::db)?;
                let run = run_in(&mut tx, run_id).await?;
                tx.commit().await.map_err($crate::codec::db)?;
                Ok(Some(Leased { job, run }))
            }

            async fn heartbeat(
                &self,
                lease_id: &str,
                now: Millis,
                ttl_ms: i64,
            ) -> Result<LeaseCheck, StoreError> {
                let cancel: Option<bool> = sqlx::query_scalar(
                    "UPDATE jobs SET lease_deadline = $2 WHERE lease_id = $1 AND state = 'running' \
                     RETURNING cancel_requested",
                )
                .bind(lease_id)
                .bind(now.saturating_add(ttl_ms))
                .fetch_optional(self.write_pool())
                .await
                .map_err($crate::codec::db)?;
                Ok(match cancel {
                    None => LeaseCheck::Lost,
                    Some(true) => LeaseCheck::Cancelled,
                    Some(false) => LeaseCheck::Ok,
                })
            }

            async fn job_by_lease(&self, lease_id: &str) -> Result<Job, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::job_cols!(),
                    " FROM jobs WHERE lease_id = $1 AND state = 'running'"
                ))
                .bind(lease_id)
                .fetch_optional(self.read())
                .await
                .map_err($crate::codec::db)?
                .ok_or_else(|| StoreError::StaleLease(lease_id.to_owned()))?;
                job_row(&row)
            }

            async fn finish_job(
                &self,
                lease_id: &str,
                finish: JobFinish,
                now: Millis,
            ) -> Result<Job, StoreError> {
                if !finish.state.is_final() {
                    return Err(StoreError::Database(format!(
                        "a lease ends in a final state, not `{}`",
                        finish.state.as_str()
                    )));
                }
                let row = sqlx::query(concat!(
                    "UPDATE jobs SET state = $2, message = $3, exit_code = $4, \
                     manifest_json = $5, finished_at = $6, lease_id = NULL, lease_deadline = NULL \
                     WHERE lease_id = $1 AND state = 'running' RETURNING ",
                    $crate::common::job_cols!()
                ))
                .bind(lease_id)
                .bind(finish.state.as_str())
                .bind(&finish.message)
                .bind(finish.exit_code.map(i64::from))
                .bind(&finish.manifest_json)
                .bind(now)
                .fetch_optional(self.write_pool())
                .await
                .map_err($crate::codec::db)?
                .ok_or_else(|| StoreError::StaleLease(lease_id.to_owned()))?;
                job_row(&row)
            }

            async fn expire_leases(
                &self,
                now: Millis,
                executor: Option<&str>,
                max_attempts: u32,
            ) -> Result<Vec<Expired>, StoreError> {
                let mut tx = self.write().await?;
                let select = format!(
                    "SELECT run_id, idx, attempt, executor, cancel_requested FROM jobs \
                     WHERE state = 'running' AND {} $1 ORDER BY run_id, idx{}",
                    if executor.is_some() { "executor =" } else { "lease_deadline <" },
                    Self::FOR_UPDATE
                );
                let query = sqlx::query(sqlx::AssertSqlSafe(select));
                let query = match executor {
                    Some(executor) => query.bind(executor.to_owned()),
                    None => query.bind(now),
                };
                let rows = query
                    .fetch_all(&mut *tx)
                    .await
                    .map_err($crate::codec::db)?;
                let mut expired = Vec::with_capacity(rows.len());
                for row in &rows {
                    let run_id: i64 = get(row, "run_id")?;
                    let idx: i64 = get(row, "idx")?;
                    let attempt: i64 = get(row, "attempt")?;
                    let holder: String =
                        get::<Option<String>>(row, "executor")?.unwrap_or_default();
                    let cancel: bool = get(row, "cancel_requested")?;
                    let attempts = if attempt == 1 {
                        "1 attempt".to_owned()
                    } else {
                        format!("{attempt} attempts")
                    };
                    let (state, message, finished_at) = if cancel {
                        (
                            JobState::Cancelled,
                            format!("cancelled; its lease expired on executor {holder}"),
                            Some(now),
                        )
                    } else if attempt >= i64::from(max_attempts) {
                        (
                            JobState::Errored,
                            format!("lease expired on executor {holder} after {attempts}"),
                            Some(now),
                        )
                    } else {
                        (
                            JobState::Queued,
                            format!(
                                "lease expired on executor {holder} after {attempts}; queued again"
                            ),
                            None,
                        )
                    };
                    let row = sqlx::query(concat!(
                        "UPDATE jobs SET state = $3, message = $4, finished_at = $5, \
                         lease_id = NULL, lease_deadline = NULL \
                         WHERE run_id = $1 AND idx = $2 RETURNING ",
                        $crate::common::job_cols!()
                    ))
                    .bind(run_id)
                    .bind(idx)
                    .bind(state.as_str())
                    .bind(message)
                    .bind(finished_at)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::codec::db)?;
                    expired.push(Expired {
                        job: job_row(&row)?,
                        executor: holder,
                    });
                }
                tx.commit().await.map_err($crate::codec::db)?;
                Ok(expired)
            }

            async fn add_artifacts(&self, rows: &[ArtifactRow]) -> Result<(), StoreError> {
                let mut tx = self.write().await?;
                for a in rows {
                    sqlx::query(
                        "INSERT INTO artifacts (run_id, job_idx, path, digest, size) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, job_idx, path) \
                         DO UPDATE SET digest = excluded.digest, size = excluded.size",
                    )
                    .bind(a.run_id)
                    .bind(a.job_idx)
                    .bind(&a.path)
                    .bind(&a.digest)
                    .bind(a.size)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        $crate::codec::constraint(
                            e,
                            "artifact",
                            &format!("job {} of run {}", a.job_idx, a.run_id),
                        )
                    })?;
                }
                tx.commit().await.map_err($crate::codec::db)?;
                Ok(())
            }

            async fn artifacts(&self, run_id: i64) -> Result<Vec<ArtifactRow>, StoreError> {
                let rows = sqlx::query(
                    "SELECT run_id, job_idx, path, digest, size FROM artifacts \
                     WHERE run_id = $1 ORDER BY job_idx, path",
                )
                .bind(run_id)
                .fetch_all(self.read())
                .await
                .map_err($crate::codec::db)?;
                rows.iter()
                    .map(|row| {
                        Ok(ArtifactRow {
                            run_id: get(row, "run_id")?,
                            job_idx: get(row, "job_idx")?,
                            path: get(row, "path")?,
                            digest: get(row, "digest")?,
                            size: get(row, "size")?,
                        })
                    })
                    .collect()
            }

            async fn save_cache(
                &self,
                entry: &NewCacheEntry,
                now: Millis,
            ) -> Result<bool, StoreError> {
                let mut tx = self.write().await?;
                let repo_id: i64 = sqlx::query_scalar("SELECT id FROM repos WHERE name = $1")
                    .bind(&entry.repo)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::codec::db)?
                    .ok_or_else(|| StoreError::NotFound(format!("repository {}", entry.repo)))?;
                // First writer wins: a key that has an entry keeps it.
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO caches (repo_id, cache_key, manifest_json, files, size, run_id, \
                     created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                     ON CONFLICT (repo_id, cache_key) DO NOTHING RETURNING id",
                )
                .bind(repo_id)
                .bind(&entry.key)
                .bind(&entry.manifest_json)
                .bind(entry.files)
                .bind(entry.size)
                .bind(entry.run_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| $crate::codec::constraint(e, "cache entry", &format!("run {:?}", entry.run_id)))?;
                let Some(id) = id else {
                    tx.commit().await.map_err($crate::codec::db)?;
                    return Ok(false);
                };
                let digests: std::collections::BTreeSet<&String> = entry.digests.iter().collect();
                for digest in digests {
                    sqlx::query("INSERT INTO cache_blobs (cache_id, digest) VALUES ($1, $2)")
                        .bind(id)
                        .bind(digest)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::codec::db)?;
                }
                tx.commit().await.map_err($crate::codec::db)?;
                Ok(true)
            }

            async fn use_cache(
                &self,
                repo: &str,
                key: &str,
                now: Millis,
            ) -> Result<Option<CacheEntry>, StoreError> {
                let row = sqlx::query(concat!(
                    "UPDATE caches SET last_used_at = $3 \
                     WHERE repo_id = (SELECT id FROM repos WHERE name = $1) AND cache_key = $2 \
                     RETURNING ",
                    $crate::common::cache_cols!()
                ))
                .bind(repo)
                .bind(key)
                .bind(now)
                .fetch_optional(self.write_pool())
                .await
                .map_err($crate::codec::db)?;
                row.as_ref().map(|r| cache_row(r, Some(repo))).transpose()
            }

            async fn list_caches(
                &self,
                repo: Option<&str>,
            ) -> Result<Vec<CacheEntry>, StoreError> {
                let rows = sqlx::query(concat!(
                    $crate::common::cache_select!(),
                    " WHERE $1 IS NULL \
                     OR c.repo_id = (SELECT id FROM repos WHERE name = $1) \
                     ORDER BY c.last_used_at DESC, c.id DESC"
                ))
                .bind(repo)
                .fetch_all(self.read())
                .await
                .map_err($crate::codec::db)?;
                rows.iter().map(|r| cache_row(r, None)).collect()
            }

            async fn delete_caches(
                &self,
                repo: &str,
                key: Option<&str>,
            ) -> Result<Vec<CacheEntry>, StoreError> {
                let mut tx = self.write().await?;
                let repo_id: i64 = sqlx::query_scalar("SELECT id FROM repos WHERE name = $1")
                    .bind(repo)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($crate::codec::db)?
                    .ok_or_else(|| StoreError::NotFound(format!("repository {repo}")))?;
                let rows = sqlx::query(concat!(
                    "DELETE FROM caches WHERE repo_id = $1 \
                     AND ($2 IS NULL OR cache_key = $2) RETURNING ",
                    $crate::common::cache_cols!()
                ))
                .bind(repo_id)
                .bind(key)
                .fetch_all(&mut *tx)
                .await
                .map_err($crate::codec::db)?;
                tx.commit().await.map_err($crate::codec::db)?;
                rows.iter().map(|r| cache_row(r, Some(repo))).collect()
            }

            async fn evict_caches(&self, max_bytes: i64) -> Result<Vec<CacheEntry>, StoreError> {
                let mut tx = self.write().await?;
                // Most saves fit: one sum, no rows read.
                let total: i64 =
                    sqlx::query_scalar("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM caches")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err($crate::codec::db)?;
                if total <= max_bytes {
                    tx.commit().await.map_err($crate::codec::db)?;
                    return Ok(Vec::new());
                }
                let order: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT id, size FROM caches ORDER BY last_used_at, id{}",
                    Self::FOR_UPDATE
                )))
                .fetch_all(&mut *tx)
                .await
                .map_err($crate::codec::db)?;
                let mut left: i64 = order.iter().map(|(_, size)| size).sum();
                let mut evicted = Vec::new();
                for (id, size) in order {
                    if left <= max_bytes {
                        break;
                    }
                    let row = sqlx::query(concat!($crate::common::cache_select!(), " WHERE c.id = $1"))
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err($crate::codec::db)?;
                    evicted.push(cache_row(&row, None)?);
                    sqlx::query("DELETE FROM caches WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err($crate::codec::db)?;
                    left -= size;
                }
                tx.commit().await.map_err($crate::codec::db)?;
                Ok(evicted)
            }

            async fn cache_has_blob(&self, repo: &str, digest: &str) -> Result<bool, StoreError> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT b.cache_id FROM cache_blobs b JOIN caches c ON c.id = b.cache_id \
                     WHERE b.digest = $2 AND c.repo_id = (SELECT id FROM repos WHERE name = $1) \
                     LIMIT 1",
                )
                .bind(repo)
                .bind(digest)
                .fetch_optional(self.read())
                .await
                .map_err($crate::codec::db)?;
                Ok(found.is_some())
            }

            async fn blobs_in_use(
                &self,
                digests: &[String],
            ) -> Result<std::collections::BTreeSet<String>, StoreError> {
                let mut used = std::collections::BTreeSet::new();
                for digest in digests {
                    // Each side answered from its digest index.
                    let named: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM artifacts WHERE digest = $1) \
                         OR EXISTS (SELECT 1 FROM cache_blobs WHERE digest = $1)",
                    )
                    .bind(digest)
                    .fetch_one(self.read())
                    .await
                    .map_err($crate::codec::db)?;
                    if named {
                        used.insert(digest.clone());
                    }
                }
                Ok(used)
            }

            async fn create_token(
                &self,
                name: &str,
                kind: &str,
                hash: &str,
                now: Millis,
            ) -> Result<Token, StoreError> {
                let row = sqlx::query(concat!(
                    "INSERT INTO tokens (name, kind, hash, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING ",
                    $crate::common::token_cols!()
                ))
                .bind(name)
                .bind(kind)
                .bind(hash)
                .bind(now)
                .fetch_one(self.write_pool())
                .await
                .map_err(|e| $crate::codec::constraint(e, &format!("token {name}"), "token"))?;
                token_row(&row)
            }

            async fn token_by_hash(&self, hash: &str) -> Result<Option<Token>, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::token_cols!(),
                    " FROM tokens WHERE hash = $1 AND revoked_at IS NULL"
                ))
                .bind(hash)
                .fetch_optional(self.read())
                .await
                .map_err($crate::codec::db)?;
                row.as_ref().map(token_row).transpose()
            }

            async fn list_tokens(&self) -> Result<Vec<Token>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::token_cols!(),
                    " FROM tokens ORDER BY id"
                ))
                .fetch_all(self.read())
                .await
                .map_err($crate::codec::db)?;
                rows.iter().map(token_row).collect()
            }

            async fn revoke_token(&self, name: &str, now: Millis) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                )
                .bind(name)
                .bind(now)
                .execute(self.write_pool())
                .await
                .map_err($crate::codec::db)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("token {name}")));
                }
                Ok(())
            }

            async fn create_user(
                &self,
                name: &str,
                password_hash: &str,
                role: Role,
                now: Millis,
            ) -> Result<User, StoreError> {
                let row = sqlx::query(concat!(
                    "INSERT INTO users (name, password_hash, role, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4) RETURNING ",
                    $crate::common::user_cols!()
                ))
                .bind(name)
                .bind(password_hash)
                .bind(role.as_str())
                .bind(now)
                .fetch_one(self.write_pool())
                .await
                .map_err(|e| $crate::codec::constraint(e, &format!("user {name}"), "user"))?;
                user_row(&row)
            }

            async fn user_by_name(&self, name: &str) -> Result<User, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::user_cols!(),
                    " FROM users WHERE name = $1"
                ))
                .bind(name)
                .fetch_optional(self.read())
                .await
                .map_err($crate::codec::db)?
                .ok_or_else(|| StoreError::NotFound(format!("user {name}")))?;
                user_row(&row)
            }

            async fn list_users(&self) -> Result<Vec<User>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    $crate::common::user_cols!(),
                    " FROM users ORDER BY name"
                ))
                .fetch_all(self.read())
                .await
                .map_err($crate::codec::db)?;
                rows.iter().map(user_row).collect()
            }

            async fn set_user_password(
                &self,
                name: &str,
                password_hash: &str,
                now: Millis,
            ) -> Result<User, StoreError> {
                let update = sqlx::query(concat!(
                    "UPDATE users SET password_hash = $2, updated_at = $3 WHERE name = $1 \
                     RETURNING ",
                    $crate::common::user_cols!()
                ))
                .bind(name)
                .bind(password_hash)
                .bind(now);
                update_user(self.write_pool(), name, update).await
            }

            async fn set_user_role(
                &self,
                name: &str,
                role: Role,
                now: Millis,
            ) -> Result<User, StoreError> {
                let update = sqlx::query(concat!(
                    "UPDATE users SET role = $2, updated_at = $3 WHERE name = $1 RETURNING ",
                    $crate::common::user_cols!()
                ))
                .bind(name)
                .bind(role.as_str())
                .bind(now);
                update_user(self.write_pool(), name, update).await
            }

            async fn set_user_disabled(
                &self,
                name: &str,
                disabled: bool,
                now: Millis,
            ) -> Result<User, StoreError> {
                // Disabling twice keeps the first time; enabling clears it.
                let update = sqlx::query(concat!(
                    "UPDATE users SET disabled_at = \
                     CASE WHEN $2 THEN COALESCE(disabled_at, $3) ELSE NULL END \
                     WHERE name = $1 RETURNING ",
                    $crate::common::user_cols!()
                ))
                .bind(name)
                .bind(disabled)
                .bind(now);
                update_user(self.write_pool(), name, update).await
            }

            async fn delete_user(&self, name: &str) -> Result<(), StoreError> {
                let done = sqlx::query("DELETE FROM users WHERE name = $1")
                    .bind(name)
                    .execute(self.write_pool())
                    .await
                    .map_err($crate::codec::db)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("user {name}")));
                }
                Ok(())
            }

            async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
                let mut stats = QueueStats::default();
                let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM runs GROUP BY state")
                    .fetch_all(self.read())
                    .await
                    .map_err($crate::codec::db)?;
                for row in &rows {
                    let state: String = get(row, "state")?;
                    let n: i64 = get(row, "n")?;
                    if state == "queued" {
                        stats.queued_runs = n;
                    } else if $crate::codec::run_state(&state)?.is_final() {
                        stats.runs_by_state.insert(state, n);
                    }
                }
                // Two counts, each answered from its partial index.
                stats.queued_jobs =
                    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'queued'")
                        .fetch_one(self.read())
                        .await
                        .map_err($crate::codec::db)?;
                stats.running_jobs =
                    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'running'")
                        .fetch_one(self.read())
                        .await
                        .map_err($crate::codec::db)?;
                Ok(stats)
            }

            async fn close(&self) {
                self.close_pools().await;
            }
        }
    };
}

pub(crate) use {
    cache_cols, cache_select, final_run_states, impl_store, job_cols, repo_cols, run_select,
    token_cols, user_cols,
};
