"""System prompts: CRUD, the default prompt, audit entries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Prompt, Tool
from app.schemas import PromptCreate, PromptRead, PromptUpdate, PromptVoice
from app.services.admin.base import AdminWriter, diff, escape_like, page
from app.services.admin.errors import DefaultPromptRequired, NameConflict, NotFound, ValidationFailed
from app.services.admin.serializers import prompt_read
from app.services.admin.voice import (
    DEFAULT_TTS_PROVIDER,
    check_voice_providers,
    patched_voice,
    read_voice,
    stored_voice,
    voice_audit,
    voice_sample,
)
from app.services.providers.registry import ProviderRegistry


class PromptService(AdminWriter):
    """Prompt CRUD with validation and audit, and the voice sample of a prompt.

    Args:
        session: the request's database session; the service commits it.
        actor: who is acting (the admin user name), written to the audit log.
        on_change: called after every committed write (`Catalog.invalidate`).
        providers: the provider registry STT/TTS names are checked against (voice settings).
        default_tts_provider: the TTS provider of prompts that name none (`VOICE_TTS_PROVIDER`),
            for the voice sample.
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        actor: str = "system",
        on_change: Callable[[], object] | None = None,
        providers: ProviderRegistry | None = None,
        default_tts_provider: str = DEFAULT_TTS_PROVIDER,
    ) -> None:
        """Keep the collaborators."""
        super().__init__(session, actor=actor, on_change=on_change)
        self.providers = providers
        self.default_tts_provider = default_tts_provider

    async def list_prompts(
        self, *, name: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[PromptRead], int]:
        """Prompts ordered by name; `name` filters by case-insensitive substring."""
        query = select(Prompt).order_by(Prompt.name)
        if name:
            query = query.where(func.lower(Prompt.name).like(f"%{escape_like(name.lower())}%", escape="\\"))
        rows, total = await page(self.session, query, limit, offset)
        return [prompt_read(p) for p in rows], total

    async def _prompt(self, prompt_id: int) -> Prompt:
        prompt = await self.session.get(Prompt, prompt_id)
        if prompt is None:
            raise NotFound("prompt", prompt_id)
        return prompt

    async def get_prompt(self, prompt_id: int) -> PromptRead:
        """One prompt.

        Raises:
            NotFound: no such id.
        """
        return prompt_read(await self._prompt(prompt_id))

    async def get_prompt_by_name(self, name: str) -> PromptRead | None:
        """The prompt called `name`, or None."""
        prompt = await self.session.scalar(select(Prompt).where(Prompt.name == name))
        return prompt_read(prompt) if prompt is not None else None

    async def _tools_named(self, names: Sequence[str]) -> list[Tool]:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return []
        found = {t.name: t for t in await self.session.scalars(select(Tool).where(Tool.name.in_(wanted)))}
        missing = [n for n in wanted if n not in found]
        if missing:
            raise ValidationFailed("tools", f"unknown tool(s): {', '.join(missing)}")
        return [found[n] for n in wanted]

    async def _check_prompt_name(self, name: str, own_id: int | None) -> None:
        other = await self.session.scalar(select(Prompt.id).where(Prompt.name == name))
        if other is not None and other != own_id:
            raise NameConflict("prompt", name)

    @staticmethod
    def _prompt_snapshot(prompt: Prompt) -> dict[str, Any]:
        return {
            "name": prompt.name,
            "content": prompt.content,
            "metadata": prompt.meta,
            "is_default": prompt.is_default,
            "fallback_text": prompt.fallback_text,
            "tools": [t.name for t in prompt.tools],
            **voice_audit(prompt.voice),
        }

    async def _clear_other_defaults(self, keep_id: int | None) -> None:
        query = update(Prompt).where(Prompt.is_default.is_(True))
        if keep_id is not None:
            query = query.where(Prompt.id != keep_id)
        await self.session.execute(query.values(is_default=False))

    async def create_prompt(self, data: PromptCreate) -> PromptRead:
        """Create a prompt (and make it the default when `is_default`).

        Raises:
            NameConflict: the name is taken.
            ValidationFailed: an unknown tool name or STT/TTS provider.
        """
        await self._check_prompt_name(data.name, None)
        tools = await self._tools_named(data.tools)
        check_voice_providers(data.voice, self.providers)
        if data.is_default:
            await self._clear_other_defaults(None)
        prompt = Prompt(
            name=data.name,
            content=data.content,
            meta=data.metadata,
            is_default=data.is_default,
            fallback_text=data.fallback_text,
            version=1,
            tools=tools,
            voice=stored_voice(data.voice),
        )
        self.session.add(prompt)
        await self.session.flush()
        snapshot = self._prompt_snapshot(prompt)
        self._audit("create", "prompt", prompt.id, prompt.name, diff({}, snapshot))
        await self._commit("prompt", data.name)
        return prompt_read(prompt)

    async def update_prompt(self, prompt_id: int, data: PromptCreate | PromptUpdate) -> PromptRead:
        """Replace (`PromptCreate`) or patch (`PromptUpdate`, only fields sent) a prompt.

        An update that changes nothing (``{}``, or the current values) writes nothing:
        the version stays and no audit entry is added.

        Raises:
            NotFound: no such id.
            NameConflict: the new name is taken.
            ValidationFailed: an unknown tool name or STT/TTS provider.
        """
        prompt = await self._prompt(prompt_id)
        before = self._prompt_snapshot(prompt)
        if isinstance(data, PromptCreate):
            fields: dict[str, Any] = data.model_dump(exclude={"voice"})
            voice: PromptVoice | None = data.voice
        else:
            fields = data.model_dump(exclude_unset=True, exclude={"voice"})
            voice = patched_voice(prompt.voice, data.voice) if "voice" in data.model_fields_set else None
        await self._apply(prompt, fields)
        if voice is not None:
            check_voice_providers(voice, self.providers, read_voice(prompt.voice, prompt.name))
            prompt.voice = stored_voice(voice)
        changes = diff(before, self._prompt_snapshot(prompt))
        if not changes:
            await self.session.rollback()
            await self.session.refresh(prompt)
            return prompt_read(prompt)
        prompt.version = (prompt.version or 0) + 1
        self._audit("update", "prompt", prompt.id, prompt.name, changes)
        await self._commit("prompt", prompt.name)
        await self.session.refresh(prompt)
        return prompt_read(prompt)

    async def _apply(self, prompt: Prompt, fields: dict[str, Any]) -> None:
        """Set the `fields` sent on the prompt row (not yet flushed)."""
        if "name" in fields:
            await self._check_prompt_name(fields["name"], prompt.id)
            prompt.name = fields["name"]
        if "content" in fields:
            prompt.content = fields["content"]
        if "metadata" in fields:
            prompt.meta = fields["metadata"]
        if "fallback_text" in fields:
            prompt.fallback_text = fields["fallback_text"]
        if "tools" in fields:
            prompt.tools = await self._tools_named(fields["tools"])
        if "is_default" in fields:
            if fields["is_default"] and not prompt.is_default:
                await self._clear_other_defaults(prompt.id)
            prompt.is_default = fields["is_default"]

    async def set_default_prompt(self, prompt_id: int) -> PromptRead:
        """Make this prompt the default (the one used without `AI_PROMPT_NAME`).

        Making the default prompt the default again writes nothing.

        Raises:
            NotFound: no such id.
        """
        prompt = await self._prompt(prompt_id)
        if prompt.is_default:
            return prompt_read(prompt)
        previous = await self.session.scalar(
            select(Prompt.name).where(Prompt.is_default.is_(True), Prompt.id != prompt.id)
        )
        await self._clear_other_defaults(prompt.id)
        prompt.is_default = True
        prompt.version = (prompt.version or 0) + 1
        changes: dict[str, Any] = {"default_prompt": [previous, prompt.name]}
        self._audit("set_default", "prompt", prompt.id, prompt.name, changes)
        await self._commit("prompt", prompt.name)
        await self.session.refresh(prompt)
        return prompt_read(prompt)

    async def default_prompt_name(self) -> str | None:
        """The name of the default prompt, or None when no prompt is the default."""
        return await self.session.scalar(select(Prompt.name).where(Prompt.is_default.is_(True)).limit(1))

    async def delete_prompt(self, prompt_id: int) -> None:
        """Delete a prompt that is not the default.

        Calls that name no prompt run with the default one, so it stays until another
        prompt is made the default.

        Raises:
            NotFound: no such id.
            DefaultPromptRequired: it is the default prompt.
        """
        prompt = await self._prompt(prompt_id)
        if prompt.is_default:
            raise DefaultPromptRequired(prompt.name)
        snapshot = self._prompt_snapshot(prompt)
        self._audit("delete", "prompt", prompt.id, prompt.name, {k: [v, None] for k, v in snapshot.items()})
        await self.session.delete(prompt)
        await self._commit("prompt", prompt.name)

    async def voice_sample(self, prompt_id: int) -> bytes:
        """A short WAV of the prompt's saved TTS provider and voice saying its greeting.

        Raises:
            NotFound: no such id.
            VoiceSampleUnavailable: no TTS provider can make one now (the reason says why).
        """
        prompt = await self._prompt(prompt_id)
        voice = read_voice(prompt.voice, prompt.name)
        return await voice_sample(self.providers, voice, default_tts_provider=self.default_tts_provider)
