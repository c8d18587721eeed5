"""Deterministic seed data for the omnisupport example: support-ticket events.

Every day gets its own ``random.Random(f"omnisupport-{day.isoformat()}")``, so the events of a
day never depend on which other days were generated, and the global RNG is never touched.

Regenerate the committed files in place with::

    cd examples/omnisupport && python -m pipelines.data_factory.seed_data
"""

from __future__ import annotations

import datetime
import hashlib
import json
import pathlib
import random
from collections.abc import Sequence

SEED_START = datetime.date(2026, 3, 1)
SEED_END = datetime.date(2026, 4, 30)

#: The one short day of the seed: it has exactly this many events.
SHORT_DAY = datetime.date(2026, 4, 17)
SHORT_DAY_EVENTS = 3
MIN_EVENTS_PER_DAY = 4
MAX_EVENTS_PER_DAY = 12

MANIFEST_ID = "week06-seed-manifest-001"
BATCH_ID = "week06-seed-batch-001"
SOURCE = "omnisupport/ticket_events"
MANIFEST_CREATED_AT = "2026-05-01T00:00:00+00:00"
EVENTS_DIR = pathlib.PurePosixPath("data/seed/ticket_events")
MANIFESTS_DIR = pathlib.PurePosixPath("data/manifests")

CHANNELS: tuple[str, ...] = ("email", "chat", "phone", "web_form", "social")
CHANNEL_WEIGHTS: tuple[int, ...] = (40, 25, 12, 15, 8)
PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
PRIORITY_WEIGHTS: tuple[int, ...] = (20, 55, 18, 7)
PRODUCT_LINES: tuple[str, ...] = ("billing", "mobile_app", "web_portal", "integrations")
PRODUCT_LINE_WEIGHTS: tuple[int, ...] = (30, 28, 24, 18)
LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "zh")
LANGUAGE_WEIGHTS: tuple[int, ...] = (70, 10, 8, 7, 5)

#: The fixed customer pool: (customer_id, customer_name). Customers recur across days.
CUSTOMERS: tuple[tuple[str, str], ...] = (
    ("CUST-01012", "Acme Logistics GmbH"),
    ("CUST-01047", "Bluewater Analytics Ltd"),
    ("CUST-01103", "Northwind Traders"),
    ("CUST-01158", "Contoso Retail Inc."),
    ("CUST-01234", "Fabrikam Health Systems"),
    ("CUST-01299", "Tailspin Airways"),
    ("CUST-01345", "Lumen Dental Group"),
    ("CUST-01402", "Greenfield Organics"),
    ("CUST-01466", "Brightline Insurance"),
    ("CUST-01513", "Harbor & Pine Legal LLP"),
    ("CUST-01577", "Kestrel Robotics"),
    ("CUST-01620", "Maple Street Bakery"),
    ("CUST-01688", "Orbital Media Co."),
    ("CUST-01731", "Pioneer Freight Services"),
    ("CUST-01795", "Quantum Leap Tutoring"),
    ("CUST-01842", "Redwood Property Management"),
    ("CUST-01906", "Silverline Telecom"),
    ("CUST-01951", "Summit Outdoor Gear"),
    ("CUST-02018", "Trident Marine Supply"),
    ("CUST-02074", "Urban Nest Furniture"),
    ("CUST-02133", "Vantage Point Consulting"),
    ("CUST-02190", "Willow Creek Veterinary"),
    ("CUST-02245", "Zenith Solar Energy"),
    ("CUST-02301", "Alpenblick Hotels AG"),
    ("CUST-02368", "Boulangerie Martin SARL"),
    ("CUST-02412", "Café Lumière"),
    ("CUST-02479", "Distribuciones Sol y Mar S.L."),
    ("CUST-02535", "Ferretería El Roble"),
    ("CUST-02590", "Müller Maschinenbau KG"),
    ("CUST-02647", "Schneider & Söhne Elektro"),
    ("CUST-02703", "Atelier Rousseau"),
    ("CUST-02766", "Clínica Santa Lucía"),
    ("CUST-02821", "Shanghai Jade Trading Co."),
    ("CUST-02889", "Hangzhou Lotus Software"),
    ("CUST-02934", "Evergreen Credit Union"),
    ("CUST-02997", "Ironclad Security Systems"),
    ("CUST-03052", "Juniper Fitness Studios"),
    ("CUST-03118", "Lakeside Community College"),
    ("CUST-03176", "Meridian Travel Partners"),
    ("CUST-03231", "Nimbus Cloud Hosting"),
)

_MONTHS: dict[str, tuple[str, ...]] = {
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
    "de": (
        "Januar", "Februar", "März", "April", "Mai", "Juni",
        "Juli", "August", "September", "Oktober", "November", "Dezember",
    ),
    "fr": (
        "janvier", "février", "mars", "avril", "mai", "juin",
        "juillet", "août", "septembre", "octobre", "novembre", "décembre",
    ),
    "es": (
        "enero", "febrero", "marzo", "abril", "mayo", "junio",
        "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre",
    ),
    "zh": (
        "1月", "2月", "3月", "4月", "5月", "6月",
        "7月", "8月", "9月", "10月", "11月", "12月",
    ),
}  # fmt: skip

_DEVICES: tuple[str, ...] = (
    "iPhone 15",
    "iPhone 13 mini",
    "Pixel 8",
    "Samsung Galaxy S23",
    "Samsung Galaxy A54",
    "iPad Air",
)
_BROWSERS: tuple[str, ...] = ("Chrome", "Firefox", "Safari", "Edge")
_INTEGRATIONS: tuple[str, ...] = ("Salesforce", "Slack", "Zapier", "HubSpot", "Jira", "SAP")

#: (subject, body) templates per product line and language. Placeholders: {month}, {invoice},
#: {amount}, {device}, {version}, {browser}, {integration}, {count}, {code}.
_Template = tuple[str, str]
_TEMPLATES: dict[str, dict[str, tuple[_Template, ...]]] = {
    "billing": {
        "en": (
            (
                "Invoice charged twice for {month}",
                "Hello, our card was charged twice for invoice {invoice} ({month}). "
                "Both charges of {amount} EUR show on our statement. Please refund the duplicate.",
            ),
            (
                "VAT number missing on invoice {invoice}",
                "Hi team, the {month} invoice {invoice} does not show our VAT number, so our "
                "accounting cannot book it. Could you reissue it with the VAT ID on file?",
            ),
            (
                "Question about prorated charge after plan upgrade",
                "We upgraded to the Business plan mid-{month} and were billed {amount} EUR. "
                "Can you explain how the prorated amount was calculated?",
            ),
            (
                "Payment failed but card is valid",
                "Our payment for invoice {invoice} failed with error {code}, but the card works "
                "everywhere else. Please advise before our account gets suspended.",
            ),
            (
                "Request to switch to annual billing",
                "Hello, we would like to move from monthly to annual billing starting {month}. "
                "What discount applies and will the current invoice {invoice} be credited?",
            ),
        ),
        "de": (
            (
                "Rechnung {invoice} doppelt abgebucht",
                "Guten Tag, für die Rechnung {invoice} ({month}) wurden {amount} EUR zweimal "
                "abgebucht. Bitte erstatten Sie die doppelte Zahlung.",
            ),
            (
                "USt-IdNr. fehlt auf der Rechnung",
                "Hallo, auf der Rechnung {invoice} für {month} fehlt unsere USt-IdNr. "
                "Bitte senden Sie uns eine korrigierte Rechnung.",
            ),
        ),
        "fr": (
            (
                "Facture {invoice} prélevée deux fois",
                "Bonjour, la facture {invoice} de {month} a été prélevée deux fois ({amount} EUR). "
                "Merci de rembourser le doublon.",
            ),
            (
                "Numéro de TVA absent de la facture",
                "Bonjour, notre numéro de TVA n'apparaît pas sur la facture {invoice} de {month}. "
                "Pouvez-vous la rééditer ?",
            ),
        ),
        "es": (
            (
                "Factura {invoice} cobrada dos veces",
                "Hola, nos han cobrado dos veces la factura {invoice} de {month} ({amount} EUR). "
                "Por favor, devuelvan el cargo duplicado.",
            ),
            (
                "Error en el pago con tarjeta",
                "Buenos días, el pago de la factura {invoice} falla con el error {code}, "
                "aunque la tarjeta funciona. ¿Pueden revisarlo?",
            ),
        ),
        "zh": (
            (
                "{month}账单重复扣款",
                "您好，我们的{month}账单 {invoice} 被扣款两次，每次 {amount} 欧元。"
                "请退还重复的款项。",
            ),
            (
                "发票缺少税号",
                "您好，发票 {invoice} 上没有我们的税号，财务无法入账。请重新开具发票。",
            ),
        ),
    },
    "mobile_app": {
        "en": (
            (
                "App crashes when uploading attachment",
                "Since updating to version {version}, the app crashes on my {device} every time "
                "I try to upload a PDF attachment to a ticket. Reinstalling did not help.",
            ),
            (
                "Push notifications stopped working",
                "Our agents no longer receive push notifications on {device} after the "
                "{version} update. Notifications are enabled in the system settings.",
            ),
            (
                "Cannot log in with SSO on mobile",
                "Single sign-on works in the browser, but the mobile app ({version}) on {device} "
                "shows error {code} after the identity provider redirect.",
            ),
            (
                "Dark mode makes ticket text unreadable",
                "With dark mode enabled on {device}, ticket bodies are shown as dark grey on "
                "black. App version {version}.",
            ),
            (
                "Offline drafts lost after app restart",
                "I wrote {count} replies while offline on my {device}; after restarting the app "
                "(version {version}) all drafts were gone.",
            ),
        ),
        "de": (
            (
                "App stürzt beim Hochladen von Anhängen ab",
                "Seit Version {version} stürzt die App auf meinem {device} ab, sobald ich einen "
                "Anhang hochlade.",
            ),
            (
                "Keine Push-Benachrichtigungen mehr",
                "Nach dem Update auf {version} erhalten wir auf dem {device} keine "
                "Benachrichtigungen mehr.",
            ),
        ),
        "fr": (
            (
                "L'application plante lors de l'envoi d'une pièce jointe",
                "Depuis la version {version}, l'application plante sur mon {device} dès que "
                "j'ajoute une pièce jointe.",
            ),
            (
                "Connexion SSO impossible sur mobile",
                "La connexion SSO échoue dans l'application ({version}) avec l'erreur {code}.",
            ),
        ),
        "es": (
            (
                "La aplicación se cierra al subir un adjunto",
                "Desde la versión {version}, la aplicación se cierra en mi {device} cada vez que "
                "subo un archivo adjunto.",
            ),
            (
                "No llegan las notificaciones push",
                "Después de actualizar a {version} ya no recibimos notificaciones en {device}.",
            ),
        ),
        "zh": (
            (
                "上传附件时应用闪退",
                "更新到 {version} 版本后，我的 {device} 上每次上传附件应用都会闪退。",
            ),
            (
                "手机端无法通过单点登录",
                "手机应用（{version}）登录时显示错误 {code}，浏览器中可以正常登录。",
            ),
        ),
    },
    "web_portal": {
        "en": (
            (
                "Dashboard loads very slowly",
                "The ticket dashboard takes over {count} seconds to load in {browser} since this "
                "morning. Other pages are fine.",
            ),
            (
                "Export to CSV returns empty file",
                "When I export the {month} ticket report to CSV, the downloaded file only has the "
                "header row. Tried in {browser} and another browser.",
            ),
            (
                "Password reset email never arrives",
                "I requested a password reset {count} times for the web portal, but no email "
                "arrives, also not in spam.",
            ),
            (
                "Cannot add new agent seats",
                "The 'Add seat' button in the admin area shows error {code}. We need to onboard "
                "{count} new agents this week.",
            ),
            (
                "Session expires after a few minutes",
                "In {browser} the portal logs me out after about {count} minutes even though "
                "'remember me' is checked.",
            ),
        ),
        "de": (
            (
                "Dashboard lädt sehr langsam",
                "Das Dashboard braucht in {browser} über {count} Sekunden zum Laden.",
            ),
            (
                "CSV-Export ist leer",
                "Der Export des Berichts für {month} liefert eine CSV-Datei ohne Daten.",
            ),
        ),
        "fr": (
            (
                "Le tableau de bord est très lent",
                "Le tableau de bord met plus de {count} secondes à se charger dans {browser}.",
            ),
            (
                "E-mail de réinitialisation non reçu",
                "J'ai demandé {count} fois la réinitialisation du mot de passe, sans recevoir "
                "d'e-mail.",
            ),
        ),
        "es": (
            (
                "El panel tarda mucho en cargar",
                "El panel de tickets tarda más de {count} segundos en cargar en {browser}.",
            ),
            (
                "La exportación a CSV sale vacía",
                "Al exportar el informe de {month} a CSV, el archivo solo tiene la cabecera.",
            ),
        ),
        "zh": (
            (
                "控制台加载很慢",
                "从今天早上开始，工单控制台在 {browser} 中需要 {count} 秒以上才能加载。",
            ),
            (
                "收不到重置密码邮件",
                "我已经申请了 {count} 次重置密码，但一直没有收到邮件。",
            ),
        ),
    },
    "integrations": {
        "en": (
            (
                "{integration} sync stopped",
                "Tickets are no longer synced to {integration} since {month}. The integration "
                "log shows error {code}; no configuration was changed on our side.",
            ),
            (
                "Webhook deliveries failing with 401",
                "Our webhook endpoint receives {count} failed deliveries per hour with 401. "
                "We rotated the signing secret last week.",
            ),
            (
                "API rate limit hit during nightly import",
                "Our nightly import of ~{count}00 tickets via the REST API hits the rate limit. "
                "Can the limit be raised for our account?",
            ),
            (
                "Duplicate contacts created by {integration} connector",
                "The {integration} connector creates a duplicate contact for every new ticket. "
                "We now have {count} duplicates to clean up.",
            ),
            (
                "OAuth token for {integration} expires daily",
                "We have to reconnect {integration} every morning; the OAuth token seems to "
                "expire after 24 hours (error {code}).",
            ),
        ),
        "de": (
            (
                "Synchronisation mit {integration} unterbrochen",
                "Seit {month} werden keine Tickets mehr mit {integration} synchronisiert "
                "(Fehler {code}).",
            ),
            (
                "Webhooks schlagen mit 401 fehl",
                "Unser Webhook-Endpunkt erhält {count} fehlgeschlagene Zustellungen pro Stunde.",
            ),
        ),
        "fr": (
            (
                "Synchronisation {integration} interrompue",
                "Les tickets ne sont plus synchronisés avec {integration} depuis {month} "
                "(erreur {code}).",
            ),
            (
                "Limite d'API atteinte pendant l'import",
                "Notre import nocturne via l'API atteint la limite de requêtes.",
            ),
        ),
        "es": (
            (
                "La sincronización con {integration} se detuvo",
                "Desde {month} los tickets no se sincronizan con {integration} (error {code}).",
            ),
            (
                "Contactos duplicados por el conector de {integration}",
                "El conector de {integration} crea un contacto duplicado por cada ticket nuevo.",
            ),
        ),
        "zh": (
            (
                "{integration} 同步中断",
                "自{month}起，工单不再同步到 {integration}，日志显示错误 {code}。",
            ),
            (
                "Webhook 推送返回 401",
                "我们的 Webhook 接口每小时有 {count} 次推送失败，返回 401。",
            ),
        ),
    },
}


def _events_for_day(day: datetime.date, rng: random.Random) -> int:
    if day == SHORT_DAY:
        return SHORT_DAY_EVENTS
    return rng.randint(MIN_EVENTS_PER_DAY, MAX_EVENTS_PER_DAY)


def _pick(rng: random.Random, values: Sequence[str], weights: Sequence[int]) -> str:
    return rng.choices(values, weights=weights, k=1)[0]


def _text(
    rng: random.Random, day: datetime.date, product_line: str, language: str
) -> tuple[str, str]:
    subject, body = rng.choice(_TEMPLATES[product_line][language])
    fills = {
        "month": _MONTHS[language][day.month - 1],
        "invoice": f"INV-{day.year}{day.month:02d}-{rng.randint(1000, 9999)}",
        "amount": f"{rng.randint(49, 2400)}.{rng.randint(0, 99):02d}",
        "device": rng.choice(_DEVICES),
        "version": f"4.{rng.randint(2, 9)}.{rng.randint(0, 5)}",
        "browser": rng.choice(_BROWSERS),
        "integration": rng.choice(_INTEGRATIONS),
        "count": str(rng.randint(2, 30)),
        "code": f"E{rng.randint(100, 999)}",
    }
    return subject.format(**fills), body.format(**fills)


def generate_events(day: datetime.date) -> list[dict[str, object]]:
    """Return the support-ticket events of ``day``, deterministically, sorted by event_time."""
    rng = random.Random(f"omnisupport-{day.isoformat()}")
    count = _events_for_day(day, rng)
    # Distinct seconds strictly inside the day (never exactly midnight): a total order.
    seconds = sorted(rng.sample(range(60, 86_400 - 60), count))
    midnight = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    events: list[dict[str, object]] = []
    for number, second in enumerate(seconds, start=1):
        customer_id, customer_name = rng.choice(CUSTOMERS)
        product_line = _pick(rng, PRODUCT_LINES, PRODUCT_LINE_WEIGHTS)
        language = _pick(rng, LANGUAGES, LANGUAGE_WEIGHTS)
        subject, body = _text(rng, day, product_line, language)
        events.append(
            {
                "ticket_id": f"TCK-{day:%Y%m%d}-{number:04d}",
                "event_time": (midnight + datetime.timedelta(seconds=second)).isoformat(),
                "customer_id": customer_id,
                "customer_name": customer_name,
                "channel": _pick(rng, CHANNELS, CHANNEL_WEIGHTS),
                "priority": _pick(rng, PRIORITIES, PRIORITY_WEIGHTS),
                "product_line": product_line,
                "language": language,
                "subject": subject,
                "body": body,
                "status": "new",
            }
        )
    return events


def _days(start: datetime.date, end: datetime.date) -> list[datetime.date]:
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + datetime.timedelta(days=i) for i in range((end - start).days + 1)]


def _write_bytes(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_seed(
    root: pathlib.Path,
    start: datetime.date = SEED_START,
    end: datetime.date = SEED_END,
) -> pathlib.Path:
    """Write one JSONL file per day and the seed manifest under ``root``; return the manifest."""
    partitions: list[dict[str, object]] = []
    for day in _days(start, end):
        events = generate_events(day)
        relative = EVENTS_DIR / f"{day.isoformat()}.jsonl"
        data = "".join(
            json.dumps(event, sort_keys=True, ensure_ascii=False) + "\n" for event in events
        ).encode("utf-8")
        _write_bytes(root / relative, data)
        partitions.append(
            {
                "partition_key": day.isoformat(),
                "expected_record_count": len(events),
                "input_files": [
                    {"path": relative.as_posix(), "sha256": hashlib.sha256(data).hexdigest()}
                ],
            }
        )
    manifest: dict[str, object] = {
        "schema_version": 1,
        "manifest_id": MANIFEST_ID,
        "source": SOURCE,
        "batch_id": BATCH_ID,
        "created_at": MANIFEST_CREATED_AT,
        "partitions": partitions,
    }
    manifest_path = root / MANIFESTS_DIR / f"{MANIFEST_ID}.json"
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    _write_bytes(manifest_path, text.encode("utf-8"))
    return manifest_path


def main() -> None:
    """Regenerate the seed files under the current working directory."""
    root = pathlib.Path.cwd()
    manifest_path = write_seed(root)
    days = _days(SEED_START, SEED_END)
    total = sum(len(generate_events(day)) for day in days)
    print(
        f"wrote {len(days)} days, {total} events to {root / EVENTS_DIR}; "
        f"manifest {manifest_path.relative_to(root).as_posix()}"
    )


if __name__ == "__main__":
    main()
