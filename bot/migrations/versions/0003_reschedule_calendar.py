"""The ERP's delivery calendar for rescheduling: zones, closures, windows with capacity, changes.

Revision ID: 0003_reschedule_calendar
Revises: 0002_outbox_and_idempotency
Create Date: 2026-11-21 07:57:31.738943
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_reschedule_calendar"
down_revision = "0002_outbox_and_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_zones",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("cutoff_hour", sa.Integer(), nullable=True),
        sa.Column("max_days_ahead", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "delivery_closures",
        sa.Column("zone_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["zone_id"],
            ["delivery_zones.id"],
        ),
        sa.PrimaryKeyConstraint("zone_id", "day"),
    )
    op.create_table(
        "delivery_slots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("zone_id", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_delivery_slots_booked"),
        sa.ForeignKeyConstraint(
            ["zone_id"],
            ["delivery_zones.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("zone_id", "starts_at", name="uq_delivery_slots_zone_start"),
    )
    op.create_table(
        "order_deliveries",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("zone_id", sa.String(length=64), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["delivery_slots.id"],
        ),
        sa.ForeignKeyConstraint(
            ["zone_id"],
            ["delivery_zones.id"],
        ),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_table(
        "schedule_changes",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("old_start", sa.DateTime(), nullable=True),
        sa.Column("old_end", sa.DateTime(), nullable=True),
        sa.Column("new_start", sa.DateTime(), nullable=False),
        sa.Column("new_end", sa.DateTime(), nullable=False),
        sa.Column("new_slot_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("schedule_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_changes_order_id"), ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("schedule_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_changes_order_id"))

    op.drop_table("schedule_changes")
    op.drop_table("order_deliveries")
    op.drop_table("delivery_slots")
    op.drop_table("delivery_closures")
    op.drop_table("delivery_zones")
