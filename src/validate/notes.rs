//! Notes for the DBA: what changes for the application once the hypertable takes the
//! table's name.

use crate::catalog::ConstraintKind;
use crate::model::Job;

/// What changes for the application once the hypertable takes the table's name: the
/// things a DBA must check in the application before cutover.
pub fn cutover_notes(job: &Job) -> Vec<String> {
    let mut notes = Vec::new();
    let time = &job.time.name;
    for con in job
        .table
        .constraints
        .iter()
        .filter(|c| c.kind.is_unique_key())
    {
        if !con.columns.contains(time) {
            notes.push(format!(
                "{}: {} ({}) becomes ({}, {time}): the database no longer enforces ({}) alone, and `ON CONFLICT ({})` in the application must name ({}, {time})",
                job.source,
                if con.kind == ConstraintKind::PrimaryKey { "the primary key" } else { "unique constraint" },
                con.columns.join(", "),
                con.columns.join(", "),
                con.columns.join(", "),
                con.columns.join(", "),
                con.columns.join(", "),
            ));
        }
    }
    notes.extend(inbound_fk_notes(job));
    notes.push(format!(
        "{}: an UPDATE of {time} that moves a row into another chunk ({} wide) fails on a hypertable; the application must DELETE and INSERT such rows instead",
        job.source,
        humantime::format_duration(job.chunk_time_interval)
    ));
    notes
}

/// Per inbound foreign key, what the plan's choice means after cutover.
fn inbound_fk_notes(job: &Job) -> Vec<String> {
    if !job.drop_inbound_fks {
        return vec![];
    }
    job.table
        .inbound_fks
        .iter()
        .map(|fk| {
            let partitioned = if fk.referencing_partitioned {
                format!(
                    "; {} is partitioned, so rollback adds the key back checked in full inside its locked transaction (PostgreSQL cannot add it NOT VALID there), and a row referencing a missing key stops the rollback until it is fixed",
                    fk.table_name
                )
            } else {
                String::new()
            };
            if job.emulate_inbound_fks {
                format!(
                    "{}: foreign key {} on {} ({}) is dropped at cutover and emulated by triggers (ON DELETE {}, ON UPDATE {}, the existence check on insert and update, with FOR KEY SHARE on the referenced rows): they run as the writing role, which needs SELECT and UPDATE on {} and the rights the actions need on {} (a real key's checks run as the owner, past row-level security); a DEFERRABLE key is checked at the end of each statement, and SET CONSTRAINTS naming it fails; a DELETE of referenced rows in a REPEATABLE READ transaction cannot see children committed after its snapshot (READ COMMITTED and SERIALIZABLE are safe); the emulation stays after finalize until `hyperswap finalize --end-fk-emulation`{partitioned}",
                    job.source,
                    fk.name,
                    fk.table_name,
                    fk.columns.join(", "),
                    fk.on_delete.sql(),
                    fk.on_update.sql(),
                    job.source,
                    fk.table_name
                )
            } else {
                format!(
                    "{}: foreign key {} on {} ({}) is dropped at cutover (inbound_foreign_keys: drop); until you enforce it otherwise, the database no longer does: {}{partitioned}",
                    job.source,
                    fk.name,
                    fk.table_name,
                    fk.columns.join(", "),
                    crate::inbound_fks::losses(fk)
                )
            }
        })
        .collect()
}
