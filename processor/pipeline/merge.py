"""Which plans one call can stand for: consecutive identifies of one contact become one.

The engine coalesces consecutive items of one key's queue (``engine/coalesce.py``) with the
rule given to it; this is the rule for Trengo plans. Two identifies merge when they target the
same contact in the same way (same contact reference, and both or neither may create it in the
same channel); they then differ at most in the name and the custom fields, and the merged plan
sends the newest name and the newest value of every custom field any of them set, so it leaves
Trengo as the calls one by one would.
"""

from __future__ import annotations

import dataclasses

from processor.pipeline.plan import IdentifyPlan, Plan, Rejection, UpdateContact


def merged_identify(older: Plan | Rejection, newer: Plan | Rejection) -> Plan | None:
    """One plan standing for ``older`` then ``newer``; None when they cannot be merged."""
    if not (isinstance(older, IdentifyPlan) and isinstance(newer, IdentifyPlan)):
        return None
    if not _same_contact(older, newer):
        return None
    name = older.update.name if newer.update.name is None else newer.update.name
    newer_field_ids = {field.field_id for field in newer.custom_fields}
    kept = tuple(field for field in older.custom_fields if field.field_id not in newer_field_ids)
    create = None if newer.create is None else dataclasses.replace(newer.create, name=name)
    return dataclasses.replace(
        newer, update=UpdateContact(name), create=create, custom_fields=kept + newer.custom_fields
    )


def _same_contact(older: IdentifyPlan, newer: IdentifyPlan) -> bool:
    old_create, new_create = older.create, newer.create
    same_create = (old_create is None) == (new_create is None) and (
        old_create is None
        or new_create is None
        or (old_create.channel_id, old_create.identifier)
        == (new_create.channel_id, new_create.identifier)
    )
    return older.contact == newer.contact and same_create
