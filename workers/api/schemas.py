"""Request and response bodies of the HTTP service, as pydantic models: the OpenAPI schema at
/openapi.json comes from these. OpenAI's request fields are accepted where a client may send them;
fields nobody defined are refused (422)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_PROMPT_CHARS = 100_000  # the same limit the core puts on a question or prompt


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class CascadeOptions(Strict):
    """The `cascade` extension of a chat request (`extra_body={"cascade": {...}}` in the openai client)."""

    choices: list[str] | None = Field(None, description="Options of a multiple-choice question; the answer is a letter.")
    gold: str | list[str] | None = Field(None, description="The correct letter, or accepted free-form answers, for audits.")
    grader: Literal["contains", "exact", "number"] | None = None
    external_id: str | None = Field(None, max_length=255)
    timeout_s: float | None = Field(None, gt=0, le=600, description="How long to wait for the answer before a 504.")


class ChatCompletionRequest(Strict):
    model: str = Field(..., max_length=128)
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    stream: bool | None = False
    temperature: float | None = Field(None, ge=0, le=2, description="Accepted; answers are always greedy.")
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=1, description="One answer per request.")
    seed: int | None = None
    user: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    cascade: CascadeOptions | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class Routing(BaseModel):
    job_id: str
    tier: str | None
    path: list[str]
    decision: str | None
    p_t: float | None
    p_ik: float | None
    cost_usd: float
    flops: float
    abstained: bool


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    cascade: Routing


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class JobIn(Strict):
    """One job: a free-form `prompt`, or a `question` with `choices`."""

    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    question: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    choices: list[str] | None = Field(None, max_length=10)
    gold: str | list[str] | None = None
    grader: Literal["contains", "exact", "number"] | None = None
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    external_id: str | None = Field(None, max_length=255)
    tier: str | None = Field(None, description="Pin the job to this tier: it answers there and never escalates.")
    callback_url: str | None = Field(None, max_length=2048, description="POSTed the finished job, signed with HMAC-SHA256.")


class JobsIn(Strict):
    jobs: list[JobIn] = Field(..., min_length=1, max_length=10_000)


class JobIds(BaseModel):
    ids: list[str]


class Attempt(BaseModel):
    tier: str
    model: str
    decision: str
    answer: str | None
    correct: bool | None
    p_t: float | None
    p_t_options: float | None
    p_t_aggregate: str | None
    p_ik: float | None
    tau_t: float | None
    tau_ik: float | None
    tokens_in: int
    tokens_out: int
    flops: float
    cost_usd: float
    latency_ms: float
    error: str | None


class JobOut(BaseModel):
    id: str
    external_id: str | None
    kind: str
    status: str
    question: str
    choices: list[str]
    answer: str | None
    correct: bool | None
    final_tier: str | None
    pending_tier: str | None
    tokens_in: int
    tokens_out: int
    flops: float
    cost_usd: float
    latency_ms: float
    error: str | None
    created_at: str | None
    finished_at: str | None
    callback_state: str | None
    path: list[Attempt]


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobOut]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]


class BatchIn(Strict):
    input_file_id: str = Field(..., max_length=64)
    endpoint: Literal["/v1/chat/completions"]
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = None


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchObject(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: dict[str, Any] | None = None
    input_file_id: str | None
    completion_window: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expires_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts
    metadata: dict[str, str] | None = None


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class Health(BaseModel):
    status: str
    database: str | None = None
    broker: str | None = None
