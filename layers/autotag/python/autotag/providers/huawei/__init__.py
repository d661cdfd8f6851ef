"""Huawei Cloud Image Tagging, by concern: :mod:`.provider` (the adapter), :mod:`.signer` (AK/SK
request signing), :mod:`.token` (IAM tokens), :mod:`.codes` (error codes and what they become).
The documented answers are :mod:`autotag.providers.responses.huawei`."""
