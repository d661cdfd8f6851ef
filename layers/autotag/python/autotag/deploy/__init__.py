"""What a deployment consists of, derived from the validated deployment config: deploy-time code only.

One description feeds both builders: the CDK stack (``infra/``) and the local stack
(:mod:`autotag.local`) read their queue settings, table key schemas, bus rules, notification filters,
function sizes and function environments from :func:`autotag.deploy.specs.describe`, so the two
cannot drift. Plain pydantic: no CDK import, no AWS call.

- :mod:`~autotag.deploy.config`: :class:`DeploymentConfig` (TOML or JSON) and its loader;
- :mod:`~autotag.deploy.limits`: the hard limits of the AWS services involved;
- :mod:`~autotag.deploy.specs`: the resource specs and :func:`describe`;
- :mod:`~autotag.deploy.concurrency`: on_upload's concurrency, from the providers' rate limits;
- :mod:`~autotag.deploy.filters`: S3 notification filters; :mod:`~autotag.deploy.patterns`:
  EventBridge rule patterns;
- :mod:`~autotag.deploy.gateway`: the API stage and API Gateway's own error responses;
- :mod:`~autotag.deploy.environment`: each function's environment variables.

Functions never import this package (the Lambda asset leaves it out): names a function needs at run
time live in the runtime module that owns them (event names in :mod:`autotag.events`, the table
schema in :mod:`autotag.store.schema`).
"""
