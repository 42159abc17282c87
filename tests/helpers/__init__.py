"""Helpers the tests share, one module per kind of thing: paths and data-set files (repo),
waiting (waiting), synthetic KDD and Zeek uploads (kdd_data, zeek_logs), small trained models
(models), batch scoring's logs and reference scores (batch_scoring), the live watcher and its
writer as processes (watch_processes), calls to the app and their checks (api_calls), raw HTTP
(raw_http), the real gunicorn server and its processes (servers), upload registration
(registry), disks (disk), ECS field types (ecs_fields), poisoning attacks (poisoning) and
model folders for the shared store (shared_models).

Test files import them as ``from tests.helpers.<module> import ...``; fixtures live in the
conftest.py files."""
