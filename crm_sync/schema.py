"""The database schema (SQLAlchemy Core), portable between SQLite and PostgreSQL.

Alembic migrations under ``crm_sync/migrations`` create exactly these tables; a test compares
them. Times are stored as timezone-aware UTC timestamps; list-like values (emails, tags) as JSON.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["metadata"]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

TS = DateTime(timezone=True)
ID = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid

# ---------------------------------------------------------------------------- users and auth

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("login", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # agent | supervisor | admin
    Column("team", String(100), nullable=False, server_default=""),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("password_hash", String(200), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_users_team", "team"),
)

extensions = Table(
    "extensions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("pbx", String(100), nullable=False),
    Column("extension", String(40), nullable=False),
    UniqueConstraint("pbx", "extension"),
    Index("ix_extensions_user_id", "user_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),  # first characters, to tell tokens apart
    Column("name", String(100), nullable=False, server_default=""),
    Column("scope", String(16), nullable=False, server_default="user"),  # user | pbx
    Column("pbx", String(100), nullable=True),  # for scope=pbx: which PBX may use it
    Column("created_at", TS, nullable=False),
    Column("last_used_at", TS, nullable=True),
    Column("revoked_at", TS, nullable=True),
    Index("ix_api_tokens_user_id", "user_id"),
)

# ---------------------------------------------------------------------------- CRM entities

companies = Table(
    "companies",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(300), nullable=False),
    Column("responsible_user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("emails", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("notes", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_companies_name", "name"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(300), nullable=False),
    Column("company_id", ForeignKey("companies.id", ondelete="SET NULL"), nullable=True),
    Column("responsible_user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("emails", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("notes", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_contacts_name", "name"),
    Index("ix_contacts_company_id", "company_id"),
    Index("ix_contacts_responsible_user_id", "responsible_user_id"),
)

# A phone number of a contact or of a company (exactly one of the two is set).
phones = Table(
    "phones",
    metadata,
    Column("id", ID, primary_key=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=True),
    Column("company_id", ForeignKey("companies.id", ondelete="CASCADE"), nullable=True),
    Column("raw", String(64), nullable=False),
    Column("e164", String(20), nullable=True),
    Column("national", String(20), nullable=False),  # national significant number (digits)
    Column("national_rev", String(20), nullable=False),  # reversed, for indexed suffix search
    Column("label", String(40), nullable=False, server_default=""),
    Index("ix_phones_e164", "e164"),
    Index("ix_phones_national", "national"),
    Index("ix_phones_national_rev", "national_rev"),
    Index("ix_phones_contact_id", "contact_id"),
    Index("ix_phones_company_id", "company_id"),
)

# ---------------------------------------------------------------------------- activities, tasks

activities = Table(
    "activities",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(16), nullable=False),  # call | note
    Column("contact_id", ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True),
    Column("company_id", ForeignKey("companies.id", ondelete="SET NULL"), nullable=True),
    Column("user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("body", Text, nullable=False, server_default=""),
    # calls
    Column("pbx", String(100), nullable=True),
    Column("conversation_id", String(200), nullable=True),
    Column("direction", String(16), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("caller_raw", String(64), nullable=True),
    Column("caller_e164", String(20), nullable=True),
    Column("caller_name", String(200), nullable=True),
    Column("callee_raw", String(64), nullable=True),
    Column("callee_e164", String(20), nullable=True),
    Column("did", String(64), nullable=True),
    Column("queue", String(100), nullable=True),
    Column("agents", JSON, nullable=True),  # every extension that rang
    Column("answered_by", String(40), nullable=True),
    Column("answered_by_user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("talked_last", String(40), nullable=True),
    Column("transfers", JSON, nullable=True),
    Column("started_at", TS, nullable=True),
    Column("answered_at", TS, nullable=True),
    Column("ended_at", TS, nullable=True),
    Column("ring_seconds", Float, nullable=True),
    Column("talk_seconds", Float, nullable=True),
    Column("recording_ref", String(500), nullable=True),
    Column("recording_id", Integer, nullable=True),
    Column("responsible_user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("pbx", "conversation_id"),
    Index("ix_activities_contact_id", "contact_id"),
    Index("ix_activities_company_id", "company_id"),
    Index("ix_activities_user_id", "user_id"),
    Index("ix_activities_caller_e164", "caller_e164"),
    Index("ix_activities_callee_e164", "callee_e164"),
    Index("ix_activities_started_at", "started_at"),
    Index("ix_activities_created_at", "created_at"),
)

# Which users took part in a call (rang, answered, talked last): drives who may see it.
activity_participants = Table(
    "activity_participants",
    metadata,
    Column("activity_id", ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_activity_participants_user_id", "user_id"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", ID, primary_key=True),
    Column("title", String(300), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("kind", String(16), nullable=False, server_default="general"),  # general | callback
    Column("status", String(16), nullable=False, server_default="open"),  # open | done | cancelled
    Column("due_at", TS, nullable=True),
    Column("assignee_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True),
    Column("company_id", ForeignKey("companies.id", ondelete="SET NULL"), nullable=True),
    Column("activity_id", ForeignKey("activities.id", ondelete="SET NULL"), nullable=True),
    Column("number_e164", String(32), nullable=True),  # callback tasks: the caller's number
    Column("attempts", Integer, nullable=False, server_default="1"),  # missed calls folded in
    Column("closed_at", TS, nullable=True),
    Column("closed_note", Text, nullable=False, server_default=""),
    Column("created_by", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_tasks_assignee_id_status", "assignee_id", "status"),
    Index("ix_tasks_number_e164_status", "number_e164", "status"),
    Index("ix_tasks_contact_id", "contact_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", ID, primary_key=True),
    Column("at", TS, nullable=False),
    Column("user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("action", String(64), nullable=False),  # e.g. contact.update, recording.play
    Column("entity", String(32), nullable=False),
    Column("entity_id", String(64), nullable=True),
    Column("details", JSON, nullable=False),
    Index("ix_audit_log_entity", "entity", "entity_id"),
    Index("ix_audit_log_at", "at"),
)

# ---------------------------------------------------------------------------- recordings

recordings = Table(
    "recordings",
    metadata,
    Column("id", ID, primary_key=True),
    Column("pbx", String(100), nullable=False),
    Column("conversation_id", String(200), nullable=False),
    Column("source", String(500), nullable=False),  # file name or provider reference
    Column("path", String(500), nullable=True),  # relative to the recordings directory
    Column("format", String(16), nullable=True),
    Column("content_type", String(64), nullable=True),
    Column("duration_seconds", Float, nullable=True),
    Column("size_bytes", BigInteger, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("status", String(16), nullable=False),  # pending | ready | empty | failed | deleted
    Column("error", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Column("ready_at", TS, nullable=True),
    UniqueConstraint("pbx", "conversation_id", "source"),
    Index("ix_recordings_created_at", "created_at"),
)

# ---------------------------------------------------------------------------- click-to-call

originations = Table(
    "originations",
    metadata,
    Column("id", String(64), primary_key=True),  # our call id, also the AMI ChannelId
    Column("user_id", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("pbx", String(100), nullable=False),
    Column("extension", String(40), nullable=False),
    Column("to_raw", String(64), nullable=False),
    Column("to_dial", String(64), nullable=False),
    Column("contact_id", Integer, nullable=True),
    Column("status", String(32), nullable=False),  # requested | agent_ringing | ... | failed
    Column("reason", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("user_id", "idempotency_key"),
)

# ---------------------------------------------------------------------------- webhooks

webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    Column("id", ID, primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("account", String(100), nullable=False),
    Column("event_key", String(200), nullable=False),
    Column("conversation_id", String(200), nullable=False, server_default=""),
    Column("seq", BigInteger, nullable=True),  # the provider's order within the conversation
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("status", String(16), nullable=False),  # pending | done | failed
    Column("processed_at", TS, nullable=True),
    Column("error", Text, nullable=False, server_default=""),
    UniqueConstraint("provider", "account", "event_key"),
    Index("ix_webhook_inbox_status", "status"),
)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("url", String(1000), nullable=False),
    Column("event_types", JSON, nullable=False),
    Column("secret", String(200), nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("rate_per_second", Float, nullable=True),
    Column("created_by", ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", TS, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", ID, primary_key=True),
    Column(
        "subscription_id",
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", String(200), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", TS, nullable=False),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Column("delivered_at", TS, nullable=True),
    UniqueConstraint("subscription_id", "event_id"),
    Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
)

# ---------------------------------------------------------------------------- scale-out

pbx_leases = Table(
    "pbx_leases",
    metadata,
    Column("pbx", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", TS, nullable=False),
)
