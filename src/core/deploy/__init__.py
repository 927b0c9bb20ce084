"""Safe deployments: smoke tests of a new version (``smoke``) and the CodeDeploy hooks around them (``hooks``).

Nothing here imports the app, Haystack or pydantic: the hook functions ship only this package, their
handler and ``events/smoke/`` (``src/Makefile``), and run on boto3 and Powertools from the layer.
"""
