"""Run the Lambda handler in-process with an event file and print the proxy response (``make invoke``).

Like ``sam local invoke`` without Docker: same handler, same event shape, a Lambda-like context.
"""

import argparse
import json
import sys
import time
import uuid
from pathlib import Path


class LambdaContext:
    """The attributes Lambda's Python runtime gives a handler's context."""

    def __init__(self, function_name: str = "ApiFunction", timeout_ms: int = 30_000) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 1024
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event", type=Path, help="event JSON file, e.g. events/api-query.json")
    args = parser.parse_args()
    event = json.loads(args.event.read_text())
    # Imported after parsing, so --help answers without building the runtime.
    from handlers.api import handler

    response = handler(event, LambdaContext())
    json.dump(response, sys.stdout, indent=2)
    print()
    return 0 if response.get("statusCode", 500) < 500 else 1


if __name__ == "__main__":
    raise SystemExit(main())
