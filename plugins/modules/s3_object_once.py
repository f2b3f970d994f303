#!/usr/bin/python
# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: s3_object_once
short_description: Write an S3 object once, never over an existing one, and report its version
version_added: 0.1.0
description:
  - With O(src), uploads the file with C(PutObject) and the header C(If-None-Match) set to C(*), so S3 itself refuses
    to write when the key exists (whoever wrote it, whenever). The sha256 of the content goes in
    the object's metadata (C(x-amz-meta-sha256)).
  - When the key exists already, nothing is written; the existing object is accepted only when
    its content is the same (its C(sha256) metadata, else its content hashed), otherwise the task
    fails naming both hashes. So publishing a release twice is harmless, and overwriting one is
    impossible through this module.
  - Without O(src), only checks that the existing object's content has O(sha256) (a release
    published before this module, whose record is made from what is there).
  - Returns the object's C(VersionId) (versioned bucket) and sha256, what the release record pins.
author:
  - Pulse infrastructure team (@pulse-infra)
options:
  bucket:
    description: The bucket.
    type: str
    required: true
  key:
    description: The object key.
    type: str
    required: true
  src:
    description: Local file to upload.
    type: path
  sha256:
    description: The expected sha256 of the content (hex). Required without O(src); with O(src) it must match the file.
    type: str
  content_type:
    description: Content type of a new object.
    type: str
    default: application/octet-stream
notes:
  - Supports check mode (nothing is uploaded; C(changed) says whether it would be).
  - One C(PutObject) request (objects up to 5 GiB), because If-None-Match is not accepted by the parts of
    a multipart upload.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Publish a release binary, once
  pulse.infra.s3_object_once:
    bucket: pulse-lab-artifacts-0001
    key: node/pulse-node-v1.2.0
    src: .cache/rust_build/v1.2.0/pulse-node-v1.2.0
"""

RETURN = r"""
version_id:
  description: The VersionId of the object (empty in check mode for a new object, or in an unversioned bucket).
  returned: always
  type: str
sha256:
  description: The sha256 of the object's content.
  returned: always
  type: str
existed:
  description: Whether the key existed before the task.
  returned: always
  type: bool
"""

import hashlib
import os

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

MAX_SINGLE_PUT = 5 * 1024 ** 3


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def head(client, bucket, key):
    try:
        return client.head_object(Bucket=bucket, Key=key)
    except is_boto3_error_code(["404", "NoSuchKey", "NotFound"]):
        return None


def existing_sha256(client, bucket, key, answer):
    recorded = (answer.get("Metadata") or {}).get("sha256")
    if recorded:
        return recorded
    kwargs = {"Bucket": bucket, "Key": key}
    if answer.get("VersionId"):
        kwargs["VersionId"] = answer["VersionId"]
    body = client.get_object(**kwargs)["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            bucket=dict(type="str", required=True),
            key=dict(type="str", required=True, no_log=False),  # an S3 object key, not a secret
            src=dict(type="path"),
            sha256=dict(type="str"),
            content_type=dict(type="str", default="application/octet-stream"),
        ),
        supports_check_mode=True,
        required_one_of=[("src", "sha256")],
    )
    bucket, key, src = module.params["bucket"], module.params["key"], module.params["src"]
    location = f"s3://{bucket}/{key}"
    wanted = (module.params["sha256"] or "").lower() or None
    if src:
        actual = file_sha256(src)
        if wanted and wanted != actual:
            module.fail_json(msg=f"{src} has sha256 {actual}, not the expected {wanted}: not uploading it.")
        wanted = actual
    client = module.client("s3")

    def accept_existing(answer):
        found = existing_sha256(client, bucket, key, answer)
        if found != wanted:
            module.fail_json(
                msg=f"Refusing to overwrite {location}: it is published already with sha256 {found}, "
                    f"this content has sha256 {wanted}. A published object is immutable: publish under a new "
                    "name (a new version).", existed=True, sha256=found, version_id=answer.get("VersionId") or "")
        module.exit_json(changed=False, existed=True, sha256=found, version_id=answer.get("VersionId") or "")

    try:
        answer = head(client, bucket, key)
        if answer is not None:
            accept_existing(answer)
        if not src:
            module.fail_json(msg=f"{location} does not exist.", existed=False, sha256="", version_id="")
        if module.check_mode:
            module.exit_json(changed=True, existed=False, sha256=wanted, version_id="")
        if os.path.getsize(src) > MAX_SINGLE_PUT:
            module.fail_json(msg=f"{src} is larger than 5 GiB, the limit of one conditional PutObject.")
        with open(src, "rb") as body:
            try:
                put = client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*",
                                        ContentType=module.params["content_type"], Metadata={"sha256": wanted})
            except is_boto3_error_code(["PreconditionFailed", "412", "ConditionalRequestConflict"]):
                # Written by someone else between the HEAD and the PUT: S3 refused the overwrite.
                accept_existing(head(client, bucket, key) or {})
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to write {location} once")
    module.exit_json(changed=True, existed=False, sha256=wanted, version_id=put.get("VersionId") or "")


if __name__ == "__main__":
    main()
