"""Operations on a running deployment — the local stack or a real one: backfill, redrive, search, show.

:func:`autotag.ops.target.resolve_target` finds the resources: a CloudFormation stack by name
(its outputs) with the caller's AWS credentials, or the local stack through its state file.
"""
