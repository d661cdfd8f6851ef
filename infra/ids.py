"""Construct ids. Changing one replaces the resource on the next deploy, so they live in one place."""

STORAGE = "Storage"
IMAGES_BUCKET = "ImagesBucket"
ACCESS_LOGS_BUCKET = "AccessLogsBucket"
TABLE = "Table"
IDEMPOTENCY_TABLE = "IdempotencyTable"

QUEUES = "Queues"
TAG_QUEUE = "TagQueue"
TAG_DLQ = "TagDlq"
EVENT_DLQ = "EventDlq"

LAYERS = "Layers"
AUTOTAG_LAYER = "AutotagLayer"
DEPENDENCIES_LAYER = "DependenciesLayer"
VISION_MODEL_LAYER = "VisionModelLayer"

SECRETS = "ProviderSecrets"

FUNCTIONS = "Functions"

API = "Api"
REST_API = "RestApi"
API_ACCESS_LOGS = "AccessLogs"
API_KEY = "ApiKey"
USAGE_PLAN = "UsagePlan"

BUS = "Bus"
EVENT_BUS = "EventBus"
ARCHIVE = "Archive"

BATCH_OPERATIONS = "BatchOperations"
BATCH_REPORTS_BUCKET = "ReportsBucket"
BATCH_FUNCTION = "OnBatch"
BATCH_JOB_ROLE = "JobRole"

MONITORING = "Monitoring"
ALARM_TOPIC = "AlarmTopic"
DASHBOARD = "Dashboard"


def pascal(name: str) -> str:
    """`on_upload` -> `OnUpload`: construct ids derived from function names."""
    return "".join(part.capitalize() for part in name.split("_"))
