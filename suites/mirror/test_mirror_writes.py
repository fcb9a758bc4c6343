"""Writes to a mirror are refused: it only ever serves what its upstream holds.

Probes create nothing even on a mirror that wrongly accepts them: an accepted upload session is
cancelled, the manifest PUT goes to the run's namespace, deletes name content of the run only.
"""

import pytest

from regconform.checks import expect_answer, expect_equal

pytestmark = pytest.mark.workflow("mirror")


@pytest.mark.spec("Docker Registry pull-through cache: POST /v2/<name>/blobs/uploads/ on the mirror")
def test_blob_upload_refused(mirror, repo, fixtures, expect):
    """Starting a blob upload, and mounting a blob, on the mirror are refused."""
    resp = mirror.start_upload(repo)
    if resp.status_code == 202 and "location" in resp.headers:
        mirror.cancel_upload(resp.headers["location"])
    expect_answer(resp, expect("mirror.write.blob-upload"), "POST blob upload on the mirror")
    mount = mirror.mount_blob(repo, fixtures.alpha.config.digest, f"{repo}-source")
    if mount.status_code == 202 and "location" in mount.headers:
        mirror.cancel_upload(mount.headers["location"])
    expect_answer(mount, expect("mirror.write.blob-mount"), "POST blob mount on the mirror")


@pytest.mark.spec("Docker Registry pull-through cache: PUT /v2/<name>/manifests/<reference> on the mirror")
def test_manifest_put_refused(mirror, upstream, mirrored, expect):
    """Pushing a manifest (whose blobs the upstream holds) to the mirror is refused; the upstream is unchanged."""
    alpha = mirrored.images.alpha
    mirror.pull_manifest(mirrored.repo, alpha.digest)
    resp = mirror.put_manifest(mirrored.repo, "pushed-to-mirror", alpha.manifest, alpha.media_type)
    exp = expect("mirror.write.manifest-put")
    expect_answer(resp, exp, "PUT manifest on the mirror")
    expect_equal(upstream.get_manifest(mirrored.repo, "pushed-to-mirror").status_code, 404, exp,
                 "the upstream's answer for the tag pushed to the mirror")


@pytest.mark.spec("Docker Registry pull-through cache: DELETE manifests and blobs on the mirror")
def test_deletes_refused(mirror, upstream, mirrored, expect):
    """Deleting a cached manifest or blob on the mirror is refused; the content stays served."""
    alpha = mirrored.images.alpha
    mirror.pull_manifest(mirrored.repo, alpha.digest)
    mirror.pull_blob(mirrored.repo, alpha.config.digest)
    exp_manifest, exp_blob = expect("mirror.write.manifest-delete"), expect("mirror.write.blob-delete")
    expect_answer(mirror.delete_manifest(mirrored.repo, alpha.digest), exp_manifest, "DELETE manifest on the mirror")
    expect_answer(mirror.delete_blob(mirrored.repo, alpha.config.digest), exp_blob, "DELETE blob on the mirror")
    expect_equal(mirror.get_manifest(mirrored.repo, alpha.digest).status_code, 200, exp_manifest,
                 "the mirror's answer for the manifest after the DELETE")
    expect_equal(upstream.get_manifest(mirrored.repo, alpha.digest).status_code, 200, exp_manifest,
                 "the upstream's answer for the manifest after the DELETE on the mirror")
