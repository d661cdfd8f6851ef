"""The local stack: the whole system on one machine with no AWS account.

An AWS emulator (moto server) in a child process holds the same resources the CDK stack defines
(:mod:`autotag.deploy`); event-source pollers and a local API gateway drive the real handler
functions, each in its own worker process the way Lambda runs them. ``autotag local`` runs it in
the foreground; :class:`autotag.local.stack.LocalStack` is the same thing as a library.
"""
