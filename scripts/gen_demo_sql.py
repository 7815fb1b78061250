#!/usr/bin/env python3
"""Generate src/db/demo.sql: the built-in `demo` SQLite database for querygate.

A small sales schema in the spirit of the classic "classicmodels" sample
(same table and column names), but every row is invented here from a seeded
PRNG.  Output is deterministic: running the script twice yields byte-identical
files.  Standard library only.

Usage:
    python3 scripts/gen_demo_sql.py            # writes src/db/demo.sql
    python3 scripts/gen_demo_sql.py OUT.sql    # writes OUT.sql instead
"""
from __future__ import annotations

import datetime as dt
import random
import sys
from pathlib import Path

SEED = 20240601
BATCH = 100

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "src" / "db" / "demo.sql"


# ---------------------------------------------------------------------------
# SQL literal helpers
# ---------------------------------------------------------------------------

class Money:
    """Exact money value held in integer cents, rendered with 2 decimals."""

    __slots__ = ("cents",)

    def __init__(self, cents: int) -> None:
        self.cents = int(cents)

    def __str__(self) -> str:
        sign = "-" if self.cents < 0 else ""
        c = abs(self.cents)
        return f"{sign}{c // 100}.{c % 100:02d}"


def lit(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, Money):
        return str(v)
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dt.date):
        return "'" + v.isoformat() + "'"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    raise TypeError(f"unsupported literal type: {type(v)!r}")


def inserts(table: str, cols: list[str], rows: list[tuple]) -> list[str]:
    out = []
    head = f"INSERT INTO {table} ({', '.join(cols)}) VALUES"
    for i in range(0, len(rows), BATCH):
        chunk = rows[i:i + BATCH]
        body = ",\n".join("  (" + ", ".join(lit(v) for v in r) + ")" for r in chunk)
        out.append(f"{head}\n{body};")
    return out


# ---------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------

SCHEMA = """\
CREATE TABLE offices (
  officeCode   TEXT NOT NULL PRIMARY KEY,
  city         TEXT NOT NULL,
  phone        TEXT NOT NULL,
  addressLine1 TEXT NOT NULL,
  addressLine2 TEXT,
  state        TEXT,
  country      TEXT NOT NULL,
  postalCode   TEXT NOT NULL,
  territory    TEXT NOT NULL
);

CREATE TABLE employees (
  employeeNumber INTEGER NOT NULL PRIMARY KEY,
  lastName       TEXT NOT NULL,
  firstName      TEXT NOT NULL,
  extension      TEXT NOT NULL,
  email          TEXT NOT NULL,
  officeCode     TEXT NOT NULL REFERENCES offices (officeCode),
  reportsTo      INTEGER REFERENCES employees (employeeNumber),
  jobTitle       TEXT NOT NULL
);

CREATE TABLE customers (
  customerNumber         INTEGER NOT NULL PRIMARY KEY,
  customerName           TEXT NOT NULL,
  contactLastName        TEXT NOT NULL,
  contactFirstName       TEXT NOT NULL,
  phone                  TEXT NOT NULL,
  addressLine1           TEXT NOT NULL,
  addressLine2           TEXT,
  city                   TEXT NOT NULL,
  state                  TEXT,
  postalCode             TEXT,
  country                TEXT NOT NULL,
  salesRepEmployeeNumber INTEGER REFERENCES employees (employeeNumber),
  creditLimit            NUMERIC(10,2) CHECK (creditLimit IS NULL OR creditLimit >= 0)
);

CREATE TABLE productlines (
  productLine     TEXT NOT NULL PRIMARY KEY,
  textDescription TEXT,
  htmlDescription TEXT,
  image           BLOB
);

CREATE TABLE products (
  productCode        TEXT NOT NULL PRIMARY KEY,
  productName        TEXT NOT NULL,
  productLine        TEXT NOT NULL REFERENCES productlines (productLine),
  productScale       TEXT NOT NULL,
  productVendor      TEXT NOT NULL,
  productDescription TEXT NOT NULL,
  quantityInStock    INTEGER NOT NULL CHECK (quantityInStock >= 0),
  buyPrice           NUMERIC(10,2) NOT NULL CHECK (buyPrice > 0),
  MSRP               NUMERIC(10,2) NOT NULL CHECK (MSRP >= buyPrice)
);

CREATE TABLE orders (
  orderNumber    INTEGER NOT NULL PRIMARY KEY,
  orderDate      TEXT NOT NULL,
  requiredDate   TEXT NOT NULL,
  shippedDate    TEXT,
  status         TEXT NOT NULL CHECK (status IN ('Shipped', 'Resolved', 'Cancelled', 'On Hold', 'Disputed', 'In Process')),
  comments       TEXT,
  customerNumber INTEGER NOT NULL REFERENCES customers (customerNumber)
);

CREATE TABLE orderdetails (
  orderNumber     INTEGER NOT NULL REFERENCES orders (orderNumber),
  productCode     TEXT NOT NULL REFERENCES products (productCode),
  quantityOrdered INTEGER NOT NULL CHECK (quantityOrdered > 0),
  priceEach       NUMERIC(10,2) NOT NULL CHECK (priceEach > 0),
  orderLineNumber INTEGER NOT NULL CHECK (orderLineNumber > 0),
  PRIMARY KEY (orderNumber, productCode)
);

CREATE TABLE payments (
  customerNumber INTEGER NOT NULL REFERENCES customers (customerNumber),
  checkNumber    TEXT NOT NULL,
  paymentDate    TEXT NOT NULL,
  amount         NUMERIC(10,2) NOT NULL CHECK (amount > 0),
  PRIMARY KEY (customerNumber, checkNumber)
);
"""

INDEXES = """\
CREATE UNIQUE INDEX ux_employees_email ON employees (email);
CREATE INDEX idx_employees_office ON employees (officeCode);
CREATE INDEX idx_employees_reports_to ON employees (reportsTo);
CREATE INDEX idx_customers_sales_rep ON customers (salesRepEmployeeNumber);
CREATE INDEX idx_products_line ON products (productLine);
CREATE INDEX idx_orders_customer ON orders (customerNumber);
CREATE INDEX idx_orders_order_date ON orders (orderDate);
CREATE INDEX idx_orderdetails_product ON orderdetails (productCode);
"""

VIEWS = """\
CREATE VIEW customer_order_totals AS
SELECT
  c.customerNumber,
  c.customerName,
  c.country,
  COUNT(DISTINCT o.orderNumber) AS orderCount,
  ROUND(COALESCE(SUM(od.quantityOrdered * od.priceEach), 0), 2) AS totalAmount
FROM customers c
LEFT JOIN orders o ON o.customerNumber = c.customerNumber
LEFT JOIN orderdetails od ON od.orderNumber = o.orderNumber
GROUP BY c.customerNumber, c.customerName, c.country;

CREATE VIEW sales_by_productline AS
SELECT
  pl.productLine,
  COUNT(DISTINCT p.productCode) AS productCount,
  COUNT(od.orderNumber) AS orderLines,
  COALESCE(SUM(od.quantityOrdered), 0) AS unitsSold,
  ROUND(COALESCE(SUM(od.quantityOrdered * od.priceEach), 0), 2) AS revenue
FROM productlines pl
LEFT JOIN products p ON p.productLine = pl.productLine
LEFT JOIN orderdetails od ON od.productCode = p.productCode
  AND od.orderNumber IN (SELECT orderNumber FROM orders WHERE status <> 'Cancelled')
GROUP BY pl.productLine;
"""


# ---------------------------------------------------------------------------
# Reference data (all invented)
# ---------------------------------------------------------------------------

# code, city, phone, address1, address2, state, country, postalCode, territory
OFFICES = [
    ("1", "Chicago", "+1 312 555 0142", "410 Lakeshore Plaza", "Suite 1200", "IL", "USA", "60611", "NA"),
    ("2", "Toronto", "+1 416 555 0190", "88 Front Street West", None, "ON", "Canada", "M5J 1E3", "NA"),
    ("3", "Hamburg", "+49 40 5550 1730", "Speicherstrasse 17", None, None, "Germany", "20457", "EMEA"),
    ("4", "Madrid", "+34 91 555 2260", "Calle de Serrano 54", "Planta 3", None, "Spain", "28001", "EMEA"),
    ("5", "Osaka", "+81 6 5550 4411", "2-7-3 Umeda, Kita-ku", None, "Osaka", "Japan", "530-0001", "Japan"),
    ("6", "Melbourne", "+61 3 5550 8870", "120 Collins Street", "Level 9", "Victoria", "Australia", "3000", "APAC"),
    ("7", "Manchester", "+44 161 555 0733", "22 Deansgate Quay", None, None, "UK", "M3 4LQ", "EMEA"),
]

FIRST_NAMES = [
    "Alice", "Bruno", "Carmen", "Daniel", "Elena", "Felix", "Grace", "Hugo", "Ingrid", "Jonas",
    "Keiko", "Liam", "Marta", "Nils", "Olivia", "Pablo", "Quinn", "Rosa", "Samuel", "Tara",
    "Umberto", "Vera", "Walter", "Ximena", "Yusuf", "Zoe", "Aaron", "Beatrice", "Conor", "Daphne",
    "Emil", "Fiona", "Gareth", "Hanna", "Ivan", "Julia", "Kenji", "Lucia", "Mateo", "Nadia",
    "Oscar", "Petra", "Rafael", "Sofia", "Tobias", "Ursula", "Victor", "Wendy", "Yara", "Henrik",
]

LAST_NAMES = [
    "Abernathy", "Bergstrom", "Castillo", "Delacroix", "Eriksen", "Fairweather", "Gallo", "Hartmann",
    "Ishikawa", "Jablonski", "Kowalczyk", "Lindqvist", "Moreau", "Nakamura", "O'Brien", "Pellegrini",
    "Quintero", "Rasmussen", "Schreiber", "Thornton", "Underwood", "Valdez", "Whitaker", "Yamada",
    "Zimmer", "Ashford", "Blackwood", "Carrington", "Dunmore", "Ellsworth", "Fitzgerald", "Grimaldi",
    "Holloway", "Iversen", "Jansen", "Kirkland", "Lombardi", "McAllister", "Novak", "Okafor",
    "Pritchard", "Rowntree", "Sandoval", "Takahashi", "Van der Berg", "Wexley", "D'Angelo", "Brennan",
]

# country -> (territory, [(city, state, postal prefix)], phone prefix)
COUNTRIES = {
    "USA": ("NA", [("Portland", "OR", "972"), ("Austin", "TX", "787"), ("Denver", "CO", "802"),
                   ("Boston", "MA", "021"), ("San Diego", "CA", "921"), ("Columbus", "OH", "432"),
                   ("Raleigh", "NC", "276"), ("Milwaukee", "WI", "532")], "+1"),
    "Canada": ("NA", [("Vancouver", "BC", "V6B"), ("Montréal", "QC", "H2X"), ("Calgary", "AB", "T2P")], "+1"),
    "Germany": ("EMEA", [("München", None, "80"), ("Köln", None, "50"), ("Leipzig", None, "04")], "+49"),
    "France": ("EMEA", [("Lyon", None, "69"), ("Nantes", None, "44"), ("Lille", None, "59")], "+33"),
    "Spain": ("EMEA", [("Sevilla", None, "41"), ("Valencia", None, "46"), ("Bilbao", None, "48")], "+34"),
    "Italy": ("EMEA", [("Torino", None, "10"), ("Bologna", None, "40")], "+39"),
    "UK": ("EMEA", [("Bristol", None, "BS"), ("Leeds", None, "LS"), ("Edinburgh", None, "EH")], "+44"),
    "Ireland": ("EMEA", [("Cork", None, "T12")], "+353"),
    "Norway": ("EMEA", [("Bergen", None, "50")], "+47"),
    "Sweden": ("EMEA", [("Göteborg", None, "41")], "+46"),
    "Denmark": ("EMEA", [("Aarhus", None, "80")], "+45"),
    "Switzerland": ("EMEA", [("Basel", None, "40")], "+41"),
    "Austria": ("EMEA", [("Graz", None, "80")], "+43"),
    "Belgium": ("EMEA", [("Gent", None, "90")], "+32"),
    "Japan": ("Japan", [("Kyoto", "Kyoto", "600"), ("Nagoya", "Aichi", "450")], "+81"),
    "Australia": ("APAC", [("Brisbane", "Queensland", "40"), ("Perth", "WA", "60"), ("Adelaide", "SA", "50")], "+61"),
    "New Zealand": ("APAC", [("Wellington", None, "60"), ("Christchurch", None, "80")], "+64"),
    "Singapore": ("APAC", [("Singapore", None, "0")], "+65"),
}

# relative customer weight by country
COUNTRY_WEIGHTS = [
    ("USA", 30), ("Canada", 6), ("Germany", 11), ("France", 11), ("Spain", 8), ("Italy", 5),
    ("UK", 9), ("Ireland", 2), ("Norway", 3), ("Sweden", 3), ("Denmark", 3), ("Switzerland", 2),
    ("Austria", 2), ("Belgium", 2), ("Japan", 5), ("Australia", 6), ("New Zealand", 3), ("Singapore", 3),
]

NAME_HEADS = [
    "Atlas", "Beacon", "Copper", "Driftwood", "Ember", "Foxglove", "Granite", "Harbor", "Ironbark",
    "Juniper", "Kestrel", "Lantern", "Meridian", "Northwind", "Oakridge", "Pinnacle", "Quarry",
    "Redwood", "Silverline", "Tidewater", "Union Square", "Valley", "Westgate", "Yellowstone",
    "Zephyr", "Bluebird", "Crossroads", "Dragon's Hoard", "Gearbox", "Heritage", "Keystone",
    "Milestone", "Piston", "Rivet", "Signal", "Throttle", "Waypoint", "Axle", "Chrome", "Flywheel",
]
NAME_TAILS = [
    "Collectibles", "Diecast", "Hobbies", "Model Works", "Miniatures", "Scale Models", "Toys & Games",
    "Replicas", "Gift Shop", "Trading Co.", "Emporium", "Hobby Supply", "Models Ltd.", "Curios",
]
# A few hand-written customers with non-ASCII names (country, name, contact first, contact last)
SPECIAL_CUSTOMERS = [
    ("France", "Modèles Réduits Étoile", "Hélène", "Lefèvre"),
    ("Germany", "Müller Sammlerstücke GmbH", "Jürgen", "Müller"),
    ("Spain", "Coleccionables Señorío", "Begoña", "Núñez"),
    ("Canada", "Québec Miniatures Ltée", "Josée", "Bélanger"),
    ("Denmark", "Øresund Hobby ApS", "Søren", "Kjær"),
    ("Sweden", "Åkesson Leksaker AB", "Björn", "Åkesson"),
]
STREETS = ["Main St", "Harbour Rd", "Station Ave", "Market Lane", "Kingsway", "Elm Court",
           "Mill Road", "Bridge St", "Park Blvd", "Church Row", "High Street", "Dock Walk"]

PRODUCT_LINES = [
    ("Classic Cars", "Detailed die-cast replicas of classic road cars, with opening doors, hoods and trunks.",
     "Classic Cars", 28),
    ("Motorcycles", "Scale motorcycles with working kickstands, steerable front wheels and rubber tyres.",
     "Motorcycles", 13),
    ("Planes", "Display-ready model aircraft from the propeller era to early jets, stand included.",
     "Planes", 12),
    ("Ships", "Hand-finished model ships and sailing vessels with rigging and display base.",
     "Ships", 9),
    ("Trains", "Collectible locomotives and rolling stock; static display models, not for track use.",
     "Trains", 6),
    ("Trucks and Buses", "Heavy haulers, delivery vans and coaches with articulated cabs and detailed chassis.",
     "Trucks and Buses", 12),
    ("Vintage Cars", "Pre-war and early post-war automobiles with period-correct trim and paint.",
     "Vintage Cars", 30),
]

MAKES_CAR = ["Aurelian", "Bellweather", "Castellan", "Dunmore", "Everett", "Fairlane-Hart",
             "Gallant", "Halcyon", "Invicta Moto", "Kingsbridge", "Lancer & Co", "Marlowe"]
MODELS_CAR = ["Roadster", "Coupe", "Convertible", "Sedan", "GT", "Spider", "Phaeton", "Tourer",
              "Speedster", "Fastback", "Town Car", "Landaulet", "Sport 2+2", "Boattail"]
MAKES_MOTO = ["Vantor", "Rheingold", "Kestrel", "Stroud", "Moretti", "Thunderline"]
MODELS_MOTO = ["Scrambler", "Café Racer", "Tourer 750", "Sport 500", "Flat Twin", "Bobber", "Trail 250"]
PLANES = ["Monoplane", "Biplane", "Flying Boat", "Airliner", "Trainer", "Seaplane", "Mail Plane",
          "Air Racer", "Cargo Transport", "Jet Prototype"]
PLANE_MAKERS = ["Skyward", "Albatross", "Corvin", "Halden", "Merrow", "Pelican Aero"]
SHIPS = ["Clipper", "Schooner", "Galleon", "Steam Packet", "Ocean Liner", "Frigate", "Brigantine",
         "Paddle Steamer", "Harbor Tug", "Yacht"]
SHIP_NAMES = ["Albion Star", "Cape Wanderer", "Northern Belle", "Sea Sparrow", "Golden Tern",
              "Mistral", "Endeavour Bay", "Silver Gull", "Ironclad Duke"]
TRAINS = ["Steam Locomotive", "Diesel Switcher", "Observation Car", "Dining Car", "Streamliner",
          "Freight Caboose", "Mountain Class 4-8-2"]
TRAIN_LINES = ["Great Western & Pacific", "Northern Valley", "Lakeshore Limited", "Coastal Express",
               "Highland Rail"]
TRUCKS = ["Flatbed Truck", "Tanker", "Delivery Van", "Fire Engine", "City Bus", "Tow Truck",
          "Dump Truck", "School Bus", "Tractor Unit", "Pickup", "Double Decker", "Milk Float"]
TRUCK_MAKES = ["Brennan Motors", "Haulwell", "Titan", "Redmond", "Cobalt", "Stanway"]
VENDORS = ["Redline Diecast", "Northgate Replicas", "Precision Scale Co.", "Heirloom Models",
           "Gearhead Miniatures", "Studio Kestrel", "Atlas Modelworks", "Carrow & Finch"]
SCALES = {
    "Classic Cars": ["1:10", "1:12", "1:18", "1:24"],
    "Motorcycles": ["1:10", "1:12", "1:18"],
    "Planes": ["1:24", "1:48", "1:72"],
    "Ships": ["1:72", "1:350", "1:700"],
    "Trains": ["1:32", "1:50", "1:87"],
    "Trucks and Buses": ["1:12", "1:18", "1:24", "1:50"],
    "Vintage Cars": ["1:18", "1:24", "1:32"],
}
PRICE_RANGE = {  # buyPrice range in whole currency units
    "Classic Cars": (30, 105), "Motorcycles": (25, 90), "Planes": (30, 80), "Ships": (25, 80),
    "Trains": (20, 70), "Trucks and Buses": (25, 85), "Vintage Cars": (18, 90),
}

STATUS_COMMENTS = {
    "Cancelled": ["Customer cancelled: found a cheaper supplier.",
                  "Cancelled after credit limit review.",
                  "Customer cancelled order; goods not yet shipped."],
    "On Hold": ["Credit limit exceeded; awaiting payment before release.",
                "On hold until customer confirms delivery address."],
    "Disputed": ["Customer claims two items arrived damaged; photos requested.",
                 "Customer disputes the invoiced price on one line."],
    "Resolved": ["Dispute resolved: replacement units sent at no charge.",
                 "Customer's claim accepted; partial credit issued."],
    "In Process": [None, "Awaiting stock for one product line."],
}
SHIPPED_COMMENTS = ["Customer requested gift wrapping.", "Deliver to loading dock at rear.",
                    "Please call before delivery.", "Rush order; customer is a repeat buyer.",
                    "Check packaging on fragile items."]


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------

def cents(rng: random.Random, lo: float, hi: float) -> int:
    return rng.randint(int(round(lo * 100)), int(round(hi * 100)))


def gen_employees(rng: random.Random):
    names: set[tuple[str, str]] = set()

    def new_name():
        while True:
            n = (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
            if n not in names:
                names.add(n)
                return n

    emails: set[str] = set()

    def email(first, last):
        base = (first[0] + "." + "".join(ch for ch in last if ch.isalpha())).lower()
        e, k = base, 1
        while e in emails:
            k += 1
            e = f"{base}{k}"
        emails.add(e)
        return e + "@querygate-demo.example"

    rows = []
    num = 1000

    def add(office, reports_to, title):
        nonlocal num
        first, last = new_name()
        emp = (num, last, first, f"x{rng.randint(100, 9999)}", email(first, last), office, reports_to, title)
        rows.append(emp)
        num += 2 if rng.random() < 0.5 else 1
        return emp[0]

    president = add("1", None, "President")
    vp_sales = add("1", president, "VP Sales")
    add("1", president, "VP Marketing")
    managers = {
        "NA": add("2", vp_sales, "Sales Manager (NA)"),
        "EMEA": add("3", vp_sales, "Sales Manager (EMEA)"),
        "APAC": add("6", vp_sales, "Sales Manager (APAC)"),
    }
    # Japan reports to the APAC manager
    rep_plan = [("1", "NA"), ("1", "NA"), ("1", "NA"), ("2", "NA"), ("2", "NA"),
                ("3", "EMEA"), ("3", "EMEA"), ("4", "EMEA"), ("4", "EMEA"), ("4", "EMEA"),
                ("7", "EMEA"), ("7", "EMEA"), ("7", "EMEA"),
                ("5", "APAC"), ("5", "APAC"), ("6", "APAC"), ("6", "APAC")]
    reps_by_territory: dict[str, list[int]] = {}
    territory_of_office = {o[0]: o[8] for o in OFFICES}
    for office, mgr in rep_plan:
        e = add(office, managers[mgr], "Sales Rep")
        reps_by_territory.setdefault(territory_of_office[office], []).append(e)
    return rows, reps_by_territory


def gen_customers(rng: random.Random, reps_by_territory):
    countries = [c for c, _ in COUNTRY_WEIGHTS]
    weights = [w for _, w in COUNTRY_WEIGHTS]
    used_names: set[str] = set()
    specials = list(SPECIAL_CUSTOMERS)
    rows = []
    num = 103
    total = 122
    special_slots = set(rng.sample(range(total), len(specials)))
    for i in range(total):
        if i in special_slots:
            country, name, cfirst, clast = specials.pop(0)
        else:
            country = rng.choices(countries, weights)[0]
            while True:
                name = f"{rng.choice(NAME_HEADS)} {rng.choice(NAME_TAILS)}"
                if name not in used_names:
                    break
            cfirst, clast = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        used_names.add(name)
        territory, cities, prefix = COUNTRIES[country]
        city, state, postal_prefix = rng.choice(cities)
        if country in ("USA",):
            postal = f"{postal_prefix}{rng.randint(0, 99):02d}"
        elif country in ("Canada", "UK", "Ireland"):
            postal = f"{postal_prefix} {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPRTW')}{rng.choice('ABDEFGHJLNPRTW')}"
        elif country == "Singapore":
            postal = f"{rng.randint(10000, 99999):06d}"
        elif country == "Japan":
            postal = f"{postal_prefix}-{rng.randint(1, 9999):04d}"
        elif country in ("Australia", "New Zealand", "Norway", "Denmark", "Switzerland", "Austria", "Belgium"):
            postal = f"{postal_prefix}{rng.randint(0, 99):02d}"  # 4-digit codes
        else:
            postal = f"{postal_prefix}{rng.randint(0, 999):03d}"  # 5-digit codes
        phone = f"{prefix} {rng.randint(20, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
        addr1 = f"{rng.randint(1, 980)} {rng.choice(STREETS)}"
        addr2 = rng.choice([None, None, None, f"Unit {rng.randint(1, 40)}", f"Floor {rng.randint(2, 12)}"])
        # ~8% of customers are prospects: no sales rep, zero credit, no orders
        prospect = rng.random() < 0.08
        if prospect:
            rep, credit = None, Money(0)
        else:
            rep = rng.choice(reps_by_territory[territory])
            credit = Money(rng.randint(200, 2300) * 10000)  # 20,000.00 .. 230,000.00 in 100s
        rows.append((num, name, clast, cfirst, phone, addr1, addr2, city, state, postal, country, rep, credit))
        num += rng.randint(1, 9)
    return rows


def gen_productlines():
    return [(name, text, f"<p>{text}</p>", None) for name, text, _, _ in PRODUCT_LINES]


def gen_products(rng: random.Random):
    rows = []
    used_codes: set[str] = set()
    used_names: set[str] = set()
    for line, _, _, count in PRODUCT_LINES:
        made = 0
        while made < count:
            year = rng.randint(1900, 1975)
            if line == "Classic Cars":
                year = rng.randint(1948, 1975)
                name = f"{year} {rng.choice(MAKES_CAR)} {rng.choice(MODELS_CAR)}"
            elif line == "Vintage Cars":
                year = rng.randint(1904, 1947)
                name = f"{year} {rng.choice(MAKES_CAR)} {rng.choice(MODELS_CAR)}"
            elif line == "Motorcycles":
                year = rng.randint(1936, 2004)
                name = f"{year} {rng.choice(MAKES_MOTO)} {rng.choice(MODELS_MOTO)}"
            elif line == "Planes":
                name = f"{rng.choice(PLANE_MAKERS)} {rng.choice(PLANES)} {rng.choice('ABCDKMPR')}-{rng.randint(2, 40)}"
            elif line == "Ships":
                name = f"{rng.choice(SHIPS)} '{rng.choice(SHIP_NAMES)}' ({rng.randint(1820, 1960)})"
            elif line == "Trains":
                name = f"{rng.choice(TRAIN_LINES)} {rng.choice(TRAINS)}"
            else:
                name = f"{year} {rng.choice(TRUCK_MAKES)} {rng.choice(TRUCKS)}"
            if name in used_names:
                continue
            scale = rng.choice(SCALES[line])
            code = f"S{scale.split(':')[1]}_{rng.randint(1000, 4999)}"
            if code in used_codes:
                continue
            used_names.add(name)
            used_codes.add(code)
            lo, hi = PRICE_RANGE[line]
            buy = cents(rng, lo, hi)
            msrp = int(round(buy * rng.uniform(1.35, 2.1)))
            vendor = rng.choice(VENDORS)
            desc = (f"{scale} scale replica of the {name}. "
                    f"{rng.choice(['Die-cast metal body', 'Resin and metal construction', 'Hand-painted finish', 'Polished wood and brass fittings'])}"
                    f" with {rng.choice(['rubber tyres', 'detailed interior', 'display stand', 'opening panels', 'authentic decals'])}.")
            stock = rng.randint(0, 9990)
            rows.append((code, name, line, scale, vendor, desc, stock, Money(buy), Money(msrp)))
            made += 1
    return rows


def gen_orders(rng: random.Random, customers, products):
    start = dt.date(2003, 1, 6)
    end = dt.date(2005, 5, 31)
    span = (end - start).days
    n_orders = 326
    # order dates: sorted random days, slightly denser towards later periods and Q4
    days = []
    while len(days) < n_orders:
        d = rng.randint(0, span)
        day = start + dt.timedelta(days=d)
        if day.month in (10, 11, 12) or rng.random() < 0.7:
            days.append(d)
    days.sort()

    active = [c for c in customers if c[11] is not None]
    weights = [rng.uniform(0.6, 3.0) for _ in active]
    for k in rng.sample(range(len(active)), 2):  # two big accounts
        weights[k] = 14.0
    # ensure every active customer gets at least one order
    assignment = [c[0] for c in active]
    rng.shuffle(assignment)
    while len(assignment) < n_orders:
        assignment.append(rng.choices(active, weights)[0][0])
    assignment = assignment[:n_orders]
    rng.shuffle(assignment)

    orders, details = [], []
    order_totals = []  # (orderNumber, customerNumber, orderDate, status, totalCents)
    product_list = [(p[0], p[8].cents) for p in products]
    tail_in_process = 8  # most recent orders are still in process
    for i, d in enumerate(days):
        onum = 10100 + i
        odate = start + dt.timedelta(days=d)
        req = odate + dt.timedelta(days=rng.randint(7, 12))
        if i >= n_orders - tail_in_process:
            status = rng.choice(["In Process", "In Process", "On Hold"]) if i < n_orders - 3 else "In Process"
        else:
            r = rng.random()
            status = ("Shipped" if r < 0.90 else "Cancelled" if r < 0.93 else "Resolved" if r < 0.96
                      else "Disputed" if r < 0.98 else "On Hold")
        if status in ("Shipped", "Resolved", "Disputed"):
            shipped = odate + dt.timedelta(days=rng.randint(1, 6))
        elif status == "On Hold":
            shipped = odate + dt.timedelta(days=rng.randint(1, 4)) if rng.random() < 0.5 else None
        elif status == "Cancelled":
            shipped = odate + dt.timedelta(days=rng.randint(1, 3)) if rng.random() < 0.3 else None
        else:
            shipped = None
        if status == "Shipped":
            comment = rng.choice(SHIPPED_COMMENTS) if rng.random() < 0.12 else None
        else:
            comment = rng.choice(STATUS_COMMENTS[status])
        cust = assignment[i]
        orders.append((onum, odate, req, shipped, status, comment, cust))

        n_lines = rng.choices(range(1, 9), [4, 6, 10, 14, 16, 16, 14, 10])[0]
        total = 0
        for line_no, (code, msrp) in enumerate(rng.sample(product_list, n_lines), start=1):
            qty = rng.randint(20, 50)
            price = int(round(msrp * rng.uniform(0.80, 1.0)))
            total += qty * price
            details.append((onum, code, qty, Money(price), line_no))
        order_totals.append((onum, cust, odate, status, total))
    return orders, details, order_totals


def gen_payments(rng: random.Random, order_totals):
    by_cust: dict[int, list] = {}
    for onum, cust, odate, status, total in order_totals:
        if status in ("Shipped", "Resolved", "Disputed"):
            by_cust.setdefault(cust, []).append((odate, total))
    rows = []
    used_checks: set[str] = set()
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    for cust in sorted(by_cust):
        pending_total, pending_date = 0, None
        items = by_cust[cust]
        for idx, (odate, total) in enumerate(items):
            pending_total += total
            pending_date = odate
            last = idx == len(items) - 1
            # a few orders are paid together with the next one; the most recent may be unpaid
            if not last and rng.random() < 0.18:
                continue
            if last and rng.random() < 0.08 and pending_date > dt.date(2005, 3, 1):
                break
            while True:
                chk = f"{rng.choice(letters)}{rng.choice(letters)}{rng.randint(100000, 999999)}"
                if chk not in used_checks:
                    used_checks.add(chk)
                    break
            pdate = min(pending_date + dt.timedelta(days=rng.randint(5, 45)), dt.date(2005, 6, 9))
            rows.append((cust, chk, pdate, Money(pending_total)))
            pending_total = 0
    rows.sort(key=lambda r: (r[0], r[2], r[1]))
    return rows


def build() -> str:
    rng = random.Random(SEED)
    employees, reps = gen_employees(rng)
    customers = gen_customers(rng, reps)
    productlines = gen_productlines()
    products = gen_products(rng)
    orders, details, totals = gen_orders(rng, customers, products)
    payments = gen_payments(rng, totals)

    parts = [
        "-- Generated by scripts/gen_demo_sql.py; do not edit by hand.",
        "-- Built-in `demo` database for querygate: a small invented sales schema",
        "-- modelled on the classic \"classicmodels\" sample (same table/column names).",
        f"-- Seed: {SEED}",
        "",
        "PRAGMA foreign_keys=ON;",
        "",
        "BEGIN;",
        "",
        SCHEMA,
        INDEXES,
        VIEWS,
    ]
    data = [
        ("offices", ["officeCode", "city", "phone", "addressLine1", "addressLine2", "state", "country",
                     "postalCode", "territory"], OFFICES),
        ("employees", ["employeeNumber", "lastName", "firstName", "extension", "email", "officeCode",
                       "reportsTo", "jobTitle"], employees),
        ("customers", ["customerNumber", "customerName", "contactLastName", "contactFirstName", "phone",
                       "addressLine1", "addressLine2", "city", "state", "postalCode", "country",
                       "salesRepEmployeeNumber", "creditLimit"], customers),
        ("productlines", ["productLine", "textDescription", "htmlDescription", "image"], productlines),
        ("products", ["productCode", "productName", "productLine", "productScale", "productVendor",
                      "productDescription", "quantityInStock", "buyPrice", "MSRP"], products),
        ("orders", ["orderNumber", "orderDate", "requiredDate", "shippedDate", "status", "comments",
                    "customerNumber"], orders),
        ("orderdetails", ["orderNumber", "productCode", "quantityOrdered", "priceEach", "orderLineNumber"],
         details),
        ("payments", ["customerNumber", "checkNumber", "paymentDate", "amount"], payments),
    ]
    for table, cols, rows in data:
        parts.append(f"-- {table}: {len(rows)} rows")
        parts.extend(inserts(table, cols, rows))
        parts.append("")
    parts.append("COMMIT;")
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    text = build()
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {out} ({len(text.encode('utf-8'))} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
