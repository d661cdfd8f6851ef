"""The CDK app that deploys autotag: one construct per concern, composed by :mod:`infra.stack`."""
