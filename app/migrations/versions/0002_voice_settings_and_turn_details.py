"""voice settings on prompts, voice timeline on turns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 22:00:00.000000

Two nullable JSON columns: ``prompts.voice`` (a prompt's voice-conversation settings,
`app.schemas.PromptVoice`; NULL = the defaults) and ``turns.details`` (a voice turn's
timeline: mode, interruption, what was heard, latencies in ms, end reason, DTMF).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voice", sa.JSON(), nullable=True))
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("turns", schema=None) as batch_op:
        batch_op.drop_column("details")
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.drop_column("voice")
