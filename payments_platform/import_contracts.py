"""An import-linter contract type: per app, what it may import from the other apps (an allow-list).

import-linter's own `forbidden` contracts say what an app must not import, so an import of a new
module is allowed until someone forbids it. This contract is the other way round: every import
from one app into another must match an entry of `allowed`, written "source -> target"
(`apps.intents -> apps.connectors.gateway`): the target module, or any module inside it. Imports
inside one app, and imports of anything outside `apps` (Django, third parties), are not its
business; the layers inside an app are a `layers` contract of their own. Type-checking imports
are excluded by the root `exclude_type_checking_imports` setting.

Registered in pyproject.toml under `contract_types`; `lint-imports` (make lint, make test) runs it.
"""

from __future__ import annotations

from collections import defaultdict

from importlinter import Contract, ContractCheck, fields, output

ROOT = "apps"


def _app_of(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == ROOT and len(parts) > 1 else None


def _within(module: str, target: str) -> bool:
    return module == target or module.startswith(target + ".")


class AllowedImportsContract(Contract):
    """Each app imports only the modules of other apps its allow-list names."""

    type_name = "allowed_imports"

    allowed = fields.ListField(subfield=fields.StringField())

    def _rules(self) -> dict[str, list[str]]:
        rules: dict[str, list[str]] = defaultdict(list)
        for entry in self.allowed:  # type: ignore[attr-defined]
            source, arrow, target = (part.strip() for part in str(entry).partition("->"))
            if not arrow or not source or not target:
                raise ValueError(f"allowed entry {entry!r} is not 'source -> target'")
            rules[source].append(target)
        return rules

    def check(self, graph, verbose: bool) -> ContractCheck:
        rules = self._rules()
        violations = []
        for importer in sorted(graph.modules):
            source = _app_of(importer)
            if source is None:
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                target_app = _app_of(imported)
                if target_app is None or target_app == source:
                    continue
                if any(_within(imported, target) for target in rules.get(source, ())):
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = sorted({d["line_number"] for d in details})
                violations.append((importer, imported, lines))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported, lines in check.metadata["violations"]:
            where = ", ".join(f"l.{n}" for n in lines) or "?"
            output.print_error(
                f"{importer} -> {imported} ({where}) is not on {_app_of(importer)}'s allow-list",
                bold=False,
            )
        output.new_line()
        output.print(
            "Go through the other app's services or selectors (or its gateway, for PSP calls), "
            "or, if the dependency is right, add it to the allow-list in pyproject.toml."
        )
