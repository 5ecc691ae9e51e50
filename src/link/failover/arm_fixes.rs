//! ARM's error codes for the link's role changes (2025-01-01 spec, mi-link-facts
//! §4 and §7), each with what a DBA does about it. A code ARM answers is shown
//! as it is, with its fix from here.

pub const ARM_FIXES: &[(&str, &str)] = &[
    (
        "DistributedAvailabilityGroupFailoverSecondariesNotSynchronizing",
        "the link is not synchronizing: milink diagnose names the cause; a planned failover needs a CONNECTED, HEALTHY link (in a disaster: --forced)",
    ),
    (
        "DistributedAvailabilityGroupFailoverLogSendQueueSizeTooBig",
        "the secondary is far behind: stop the workload, let the send queue drain (milink waits for equal hardened LSNs), then run the command again",
    ),
    (
        "DistributedAvailabilityGroupFailoverRedoQueueSizeTooBig",
        "the secondary has much log left to redo: wait until its redo queue drains (instanceRedoReplicationLagSeconds), then run the command again",
    ),
    (
        "DistributedAvailabilityGroupSetRoleInstanceAlreadyInRequestedRole",
        "the instance already has that role: there is nothing to change (milink link status and diagnose show the roles)",
    ),
    (
        "DistributedAvailabilityGroupSetRoleChangeRoleAlreadyInProgress",
        "another role change of this link is running: wait for it to end; the same command then continues",
    ),
    (
        "DistributedAvailabilityGroupSetRolePrimaryPlannedNotSupported",
        "a planned change to the primary role goes through failover (failoverType Planned), not setRole",
    ),
    (
        "DistributedAvailabilityGroupSetRoleFailed",
        "the role change failed: milink diagnose shows both sides; in a split brain, milink link reconcile first",
    ),
    (
        "OperationCanNotStartDueToMiLink",
        "a database is still being created through a link (41964): wait until its seeding has finished, then run the command again",
    ),
    (
        "ConflictingServerOperation",
        "another operation on the instance is running: wait for it, then run the command again",
    ),
];

/// The fix for the first of these codes an error names.
pub fn fix_for(message: &str) -> Option<(&'static str, &'static str)> {
    ARM_FIXES.iter().find(|(code, _)| message.contains(code)).copied()
}
