"""Registry: register, promote, rollback, shadow, status — on PostgreSQL."""

from __future__ import annotations

import pytest

from urbaneye import registry
from urbaneye.db.models import AuditLog, ModelVersion
from vision.digest import sha256_file


def _onnx(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(f"not really onnx {name}".encode())
    return str(path)


def test_promote_rollback_and_status(db, tmp_path):
    with db() as s:
        a = registry.register(s, onnx_path=_onnx(tmp_path, "a"), version="a", classes=["person"])
        registry.promote(s, "a", "default", actor="admin")
        b = registry.register(s, onnx_path=_onnx(tmp_path, "b"), version="b", parent="a")
        assert b.status == "candidate"
        registry.promote(s, "b", actor="admin")
        s.commit()
        assert registry.active_for_group(s, "default").version == "b"
        assert s.get(ModelVersion, "a").status == "retired"
        assert s.get(ModelVersion, "b").status == "active"
        assert s.get(ModelVersion, "b").gate["promoted"]["replaced"] == "a"

        registry.rollback(s, "default", actor="admin")
        s.commit()
        assert registry.active_for_group(s, "default").version == "a"
        assert s.get(ModelVersion, "b").status == "retired"
        assert s.get(ModelVersion, "a").status == "active"
        # nothing before "a": a second rollback must refuse, not bounce back to the bad "b"
        with pytest.raises(registry.RegistryError, match="no earlier model"):
            registry.rollback(s, "default")

        registry.register(s, onnx_path=_onnx(tmp_path, "c"), version="c", parent="a")
        registry.promote(s, "c")
        registry.rollback(s, "default")  # skips the rolled-back "b"
        assert registry.active_for_group(s, "default").version == "a"
        s.commit()
        actions = [
            r.action for r in s.query(AuditLog).filter(AuditLog.entity == "model").order_by(AuditLog.id)
        ]
        assert actions.count("promote") == 3 and actions.count("rollback") == 2
        assert a.sha256 == sha256_file(tmp_path / "a.onnx")
        listed = [registry.to_json(m)["version"] for m in registry.list_versions(s)]
        assert sorted(listed) == ["a", "b", "c"]


def test_groups_are_independent(db, tmp_path):
    with db() as s:
        registry.register(s, onnx_path=_onnx(tmp_path, "a"), version="a")
        registry.register(s, onnx_path=_onnx(tmp_path, "n"), version="n", camera_group="night")
        registry.promote(s, "a")
        registry.promote(s, "n")
        assert registry.active_for_group(s, "default").version == "a"
        assert registry.active_for_group(s, "night").version == "n"
        with pytest.raises(registry.RegistryError, match="already active"):
            registry.promote(s, "n", "night")


def test_shadow_counts_and_errors(db, tmp_path):
    with db() as s:
        registry.register(s, onnx_path=_onnx(tmp_path, "a"), version="a")
        with pytest.raises(registry.RegistryError, match="has no active model"):
            registry.set_shadow(s, "default", "a", ["cam-1"])
        registry.promote(s, "a")
        registry.register(s, onnx_path=_onnx(tmp_path, "b"), version="b")
        with pytest.raises(registry.RegistryError, match="at least one camera"):
            registry.set_shadow(s, "default", "b", [])
        registry.set_shadow(s, "default", "b", ["cam-2", "cam-1"])
        assert s.get(ModelVersion, "b").status == "shadow"
        assert registry.active_for_group(s, "default").shadow_cameras == ["cam-1", "cam-2"]
        assert registry.record_shadow_case(s, "b", "cam-1", "exposed_garbage", "v1")
        assert not registry.record_shadow_case(s, "b", "cam-1", "exposed_garbage", "v1")  # redelivery
        registry.record_shadow_case(s, "b", "cam-2", "street_vending", "v2")
        assert registry.shadow_summary(s, "b") == {
            "cam-1": {"exposed_garbage": 1},
            "cam-2": {"street_vending": 1},
        }
        registry.promote(s, "b")  # promoting the shadow clears it
        row = registry.active_for_group(s, "default")
        assert (row.version, row.shadow_version, row.shadow_cameras) == ("b", None, [])
        with pytest.raises(registry.RegistryError, match="is active"):
            registry.retire(s, "b")
        with pytest.raises(registry.RegistryError, match="not in the registry"):
            registry.promote(s, "zzz")


def test_register_refuses_unknown_parent_and_duplicate(db, tmp_path):
    with db() as s:
        with pytest.raises(registry.RegistryError, match="parent model 'x'"):
            registry.register(s, onnx_path=_onnx(tmp_path, "a"), parent="x")
        registry.register(s, onnx_path=_onnx(tmp_path, "a"), version="a")
        with pytest.raises(registry.RegistryError, match="already registered"):
            registry.register(s, onnx_path=_onnx(tmp_path, "a"), version="a")


def test_artefacts_on_s3_are_fetched_and_hash_checked(db, s3_settings, tmp_path):
    with db() as s:
        mv = registry.register(s, onnx_path=_onnx(tmp_path, "a"), version="a", settings=s3_settings)
        s.commit()
    assert mv.onnx_uri == f"s3://{s3_settings.s3_datasets_bucket}/models/a/model.onnx"
    local = registry.fetch_onnx(mv.onnx_uri, mv.sha256, s3_settings)
    assert local.read_bytes() == b"not really onnx a"
    with pytest.raises(registry.RegistryError, match="sha256"):
        registry.fetch_onnx(mv.onnx_uri, "0" * 64, s3_settings)
