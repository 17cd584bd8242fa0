#!/usr/bin/env python3
"""Generate the cpis synthetic demo data set.

Standard library only, fixed seeds: running it again rewrites byte-identical files.

    python3 demo/generate.py            # writes into the directory holding this script
    python3 demo/generate.py OUTDIR     # writes into OUTDIR instead

Everything person-related is synthetic: NHS numbers are in the 999 test range,
phone numbers are Ofcom drama-reserved numbers, e-mail domains are example domains,
names are random combinations of common first names and surnames.
Only the local authority names and ONS GSS codes are real (public) data.
"""

import csv
import datetime as dt
import io
import os
import random
import re
import sys

SEED = 20261101
REF_DATE = dt.date(2026, 11, 1)  # fixed "today" for the demo data
FORMAT_VERSION = "cpis-upload/1"

UPLOAD_HEADER = [
    "action", "nhs_number", "local_id", "given_name", "family_name", "date_of_birth",
    "plan_type", "start_date", "end_date", "expected_delivery_date", "sensitive",
]

# ---------------------------------------------------------------------------
# Local authorities: the 152 upper-tier English LAs with children's social care
# responsibility as they stood from 1 April 2014 to 31 March 2019 (after the 2014
# Gateshead/Northumberland code changes, before the 2019 Dorset/BCP reorganisation),
# with their ONS GSS codes.  27 county councils, 36 metropolitan boroughs,
# 33 London boroughs (incl. City of London), 56 unitary authorities (incl. Isles of Scilly).
# ---------------------------------------------------------------------------
LOCAL_AUTHORITIES = [
    # Unitary authorities (E06)
    ("E06000001", "Hartlepool"),
    ("E06000002", "Middlesbrough"),
    ("E06000003", "Redcar and Cleveland"),
    ("E06000004", "Stockton-on-Tees"),
    ("E06000005", "Darlington"),
    ("E06000006", "Halton"),
    ("E06000007", "Warrington"),
    ("E06000008", "Blackburn with Darwen"),
    ("E06000009", "Blackpool"),
    ("E06000010", "Kingston upon Hull"),
    ("E06000011", "East Riding of Yorkshire"),
    ("E06000012", "North East Lincolnshire"),
    ("E06000013", "North Lincolnshire"),
    ("E06000014", "York"),
    ("E06000015", "Derby"),
    ("E06000016", "Leicester"),
    ("E06000017", "Rutland"),
    ("E06000018", "Nottingham"),
    ("E06000019", "Herefordshire"),
    ("E06000020", "Telford and Wrekin"),
    ("E06000021", "Stoke-on-Trent"),
    ("E06000022", "Bath and North East Somerset"),
    ("E06000023", "Bristol"),
    ("E06000024", "North Somerset"),
    ("E06000025", "South Gloucestershire"),
    ("E06000026", "Plymouth"),
    ("E06000027", "Torbay"),
    ("E06000028", "Bournemouth"),
    ("E06000029", "Poole"),
    ("E06000030", "Swindon"),
    ("E06000031", "Peterborough"),
    ("E06000032", "Luton"),
    ("E06000033", "Southend-on-Sea"),
    ("E06000034", "Thurrock"),
    ("E06000035", "Medway"),
    ("E06000036", "Bracknell Forest"),
    ("E06000037", "West Berkshire"),
    ("E06000038", "Reading"),
    ("E06000039", "Slough"),
    ("E06000040", "Windsor and Maidenhead"),
    ("E06000041", "Wokingham"),
    ("E06000042", "Milton Keynes"),
    ("E06000043", "Brighton and Hove"),
    ("E06000044", "Portsmouth"),
    ("E06000045", "Southampton"),
    ("E06000046", "Isle of Wight"),
    ("E06000047", "County Durham"),
    ("E06000049", "Cheshire East"),
    ("E06000050", "Cheshire West and Chester"),
    ("E06000051", "Shropshire"),
    ("E06000052", "Cornwall"),
    ("E06000053", "Isles of Scilly"),
    ("E06000054", "Wiltshire"),
    ("E06000055", "Bedford"),
    ("E06000056", "Central Bedfordshire"),
    ("E06000057", "Northumberland"),
    # Metropolitan boroughs (E08)
    ("E08000001", "Bolton"),
    ("E08000002", "Bury"),
    ("E08000003", "Manchester"),
    ("E08000004", "Oldham"),
    ("E08000005", "Rochdale"),
    ("E08000006", "Salford"),
    ("E08000007", "Stockport"),
    ("E08000008", "Tameside"),
    ("E08000009", "Trafford"),
    ("E08000010", "Wigan"),
    ("E08000011", "Knowsley"),
    ("E08000012", "Liverpool"),
    ("E08000013", "St Helens"),
    ("E08000014", "Sefton"),
    ("E08000015", "Wirral"),
    ("E08000016", "Barnsley"),
    ("E08000017", "Doncaster"),
    ("E08000018", "Rotherham"),
    ("E08000019", "Sheffield"),
    ("E08000021", "Newcastle upon Tyne"),
    ("E08000022", "North Tyneside"),
    ("E08000023", "South Tyneside"),
    ("E08000024", "Sunderland"),
    ("E08000025", "Birmingham"),
    ("E08000026", "Coventry"),
    ("E08000027", "Dudley"),
    ("E08000028", "Sandwell"),
    ("E08000029", "Solihull"),
    ("E08000030", "Walsall"),
    ("E08000031", "Wolverhampton"),
    ("E08000032", "Bradford"),
    ("E08000033", "Calderdale"),
    ("E08000034", "Kirklees"),
    ("E08000035", "Leeds"),
    ("E08000036", "Wakefield"),
    ("E08000037", "Gateshead"),
    # London boroughs (E09)
    ("E09000001", "City of London"),
    ("E09000002", "Barking and Dagenham"),
    ("E09000003", "Barnet"),
    ("E09000004", "Bexley"),
    ("E09000005", "Brent"),
    ("E09000006", "Bromley"),
    ("E09000007", "Camden"),
    ("E09000008", "Croydon"),
    ("E09000009", "Ealing"),
    ("E09000010", "Enfield"),
    ("E09000011", "Greenwich"),
    ("E09000012", "Hackney"),
    ("E09000013", "Hammersmith and Fulham"),
    ("E09000014", "Haringey"),
    ("E09000015", "Harrow"),
    ("E09000016", "Havering"),
    ("E09000017", "Hillingdon"),
    ("E09000018", "Hounslow"),
    ("E09000019", "Islington"),
    ("E09000020", "Kensington and Chelsea"),
    ("E09000021", "Kingston upon Thames"),
    ("E09000022", "Lambeth"),
    ("E09000023", "Lewisham"),
    ("E09000024", "Merton"),
    ("E09000025", "Newham"),
    ("E09000026", "Redbridge"),
    ("E09000027", "Richmond upon Thames"),
    ("E09000028", "Southwark"),
    ("E09000029", "Sutton"),
    ("E09000030", "Tower Hamlets"),
    ("E09000031", "Waltham Forest"),
    ("E09000032", "Wandsworth"),
    ("E09000033", "Westminster"),
    # County councils (E10)
    ("E10000002", "Buckinghamshire"),
    ("E10000003", "Cambridgeshire"),
    ("E10000006", "Cumbria"),
    ("E10000007", "Derbyshire"),
    ("E10000008", "Devon"),
    ("E10000009", "Dorset"),
    ("E10000011", "East Sussex"),
    ("E10000012", "Essex"),
    ("E10000013", "Gloucestershire"),
    ("E10000014", "Hampshire"),
    ("E10000015", "Hertfordshire"),
    ("E10000016", "Kent"),
    ("E10000017", "Lancashire"),
    ("E10000018", "Leicestershire"),
    ("E10000019", "Lincolnshire"),
    ("E10000020", "Norfolk"),
    ("E10000021", "Northamptonshire"),
    ("E10000023", "North Yorkshire"),
    ("E10000024", "Nottinghamshire"),
    ("E10000025", "Oxfordshire"),
    ("E10000027", "Somerset"),
    ("E10000028", "Staffordshire"),
    ("E10000029", "Suffolk"),
    ("E10000030", "Surrey"),
    ("E10000031", "Warwickshire"),
    ("E10000032", "West Sussex"),
    ("E10000034", "Worcestershire"),
]

# ---------------------------------------------------------------------------
# Care settings: fictional organisations with fake ODS codes.
# ---------------------------------------------------------------------------
SETTING_TYPES = [
    "emergency-department", "urgent-treatment-centre", "minor-injury-unit", "walk-in-centre",
    "out-of-hours-gp", "ambulance", "nhs-111", "maternity", "paediatric-ward",
    "gp", "camhs", "school-nursing", "health-visiting", "community-paediatrics", "dentistry",
    "sexual-health", "sarc", "termination-of-pregnancy",
]

CARE_SETTINGS = [
    ("Northfield General Hospital Emergency Department", "emergency-department"),
    ("Ashbury Royal Infirmary Emergency Department", "emergency-department"),
    ("Westmoor University Hospital Emergency Department", "emergency-department"),
    ("Kingsbrook Children's Hospital Emergency Department", "emergency-department"),
    ("Eastbrook Urgent Treatment Centre", "urgent-treatment-centre"),
    ("Southvale Community Hospital Urgent Treatment Centre", "urgent-treatment-centre"),
    ("Harbourside Urgent Treatment Centre", "urgent-treatment-centre"),
    ("Brackenford Minor Injuries Unit", "minor-injury-unit"),
    ("Millbridge Cottage Hospital Minor Injuries Unit", "minor-injury-unit"),
    ("Fenwick Vale Minor Injuries Unit", "minor-injury-unit"),
    ("Central Ashbury NHS Walk-in Centre", "walk-in-centre"),
    ("Riverside Quay Walk-in Centre", "walk-in-centre"),
    ("Midshire Out of Hours GP Service", "out-of-hours-gp"),
    ("Northfield and District GP Out of Hours", "out-of-hours-gp"),
    ("Wessex Vale Ambulance Service NHS Trust", "ambulance"),
    ("Pennine Moors Ambulance Service NHS Trust", "ambulance"),
    ("Midshire NHS 111 Service", "nhs-111"),
    ("Coastal Counties NHS 111 Service", "nhs-111"),
    ("Northfield General Hospital Maternity Unit", "maternity"),
    ("Ashbury Royal Infirmary Birth Centre", "maternity"),
    ("Westmoor Women's Hospital Maternity Service", "maternity"),
    ("Northfield General Hospital Children's Ward", "paediatric-ward"),
    ("Kingsbrook Children's Hospital Puffin Ward", "paediatric-ward"),
    ("Westmoor University Hospital Paediatric Assessment Unit", "paediatric-ward"),
    ("Elmtree Medical Practice", "gp"),
    ("Oakhurst Surgery", "gp"),
    ("The Willows Health Centre", "gp"),
    ("Stonegate Family Practice", "gp"),
    ("Larkfield Road Surgery", "gp"),
    ("Midshire CAMHS North Team", "camhs"),
    ("Ashbury Child and Adolescent Mental Health Service", "camhs"),
    ("Midshire School Nursing Service", "school-nursing"),
    ("Ashbury and Fenwick School Health Team", "school-nursing"),
    ("Northfield Health Visiting Team", "health-visiting"),
    ("Eastbrook 0-19 Health Visiting Service", "health-visiting"),
    ("Kingsbrook Community Paediatrics", "community-paediatrics"),
    ("Southvale Child Development Centre", "community-paediatrics"),
    ("Harbourside Dental Practice", "dentistry"),
    ("Midshire Community Dental Service", "dentistry"),
    ("Ashbury Sexual Health Clinic", "sexual-health"),
    ("Northfield Young People's Sexual Health Service", "sexual-health"),
    ("Midshire Sexual Assault Referral Centre", "sarc"),
    ("Coastal Counties SARC", "sarc"),
    ("Westmoor Pregnancy Advisory Clinic", "termination-of-pregnancy"),
    ("Ashbury Women's Health Choices Clinic", "termination-of-pregnancy"),
    ("Brackenford General Hospital Emergency Department", "emergency-department"),
    ("Millbridge Cottage Hospital Urgent Treatment Centre", "urgent-treatment-centre"),
    ("Pennine Moors Ambulance Service NHS Trust Clinical Hub", "ambulance"),
    ("Brackenford Medical Centre", "gp"),
    ("Brackenford General Hospital Maternity Unit", "maternity"),
]

# ---------------------------------------------------------------------------
# Uploads: 8 LAs spread across LA types.
# ---------------------------------------------------------------------------
UPLOAD_LAS = [
    ("E08000026", "COV"),  # Coventry (metropolitan borough)
    ("E09000033", "WES"),  # Westminster (London borough)
    ("E09000012", "HAC"),  # Hackney (London borough)
    ("E08000035", "LDS"),  # Leeds (metropolitan borough)
    ("E10000016", "KEN"),  # Kent (county council)
    ("E10000017", "LAN"),  # Lancashire (county council)
    ("E06000023", "BRS"),  # Bristol (unitary)
    ("E06000052", "CWL"),  # Cornwall (unitary)
]
COVENTRY = "E08000026"
WESTMINSTER = "E09000033"

BOY_NAMES = [
    "Oliver", "George", "Noah", "Arthur", "Harry", "Leo", "Muhammad", "Jack", "Charlie", "Oscar",
    "Jacob", "Henry", "Thomas", "Freddie", "Alfie", "Theo", "William", "Theodore", "Archie", "Joshua",
    "Alexander", "James", "Isaac", "Edward", "Lucas", "Tommy", "Finley", "Max", "Logan", "Ethan",
    "Mohammed", "Teddy", "Benjamin", "Arlo", "Joseph", "Sebastian", "Harrison", "Elijah", "Adam", "Daniel",
    "Samuel", "Louie", "Mason", "Reuben", "Albie", "Rory", "Jaxon", "Hugo", "Luca", "Zachary",
    "Reggie", "Hunter", "Louis", "Dylan", "Albert", "Toby", "Jude", "Ronnie", "Kai", "Riley",
]
GIRL_NAMES = [
    "Olivia", "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence", "Mia", "Willow",
    "Rosie", "Sophia", "Isabella", "Grace", "Daisy", "Sienna", "Poppy", "Elsie", "Emily", "Ella",
    "Evelyn", "Phoebe", "Sofia", "Evie", "Charlotte", "Harper", "Millie", "Matilda", "Maya", "Sophie",
    "Alice", "Emilia", "Isabelle", "Ruby", "Luna", "Maisie", "Aria", "Penelope", "Mila", "Bonnie",
    "Eva", "Hallie", "Eliza", "Ada", "Violet", "Esme", "Arabella", "Imogen", "Jessica", "Delilah",
    "Chloe", "Zara", "Layla", "Aisha", "Amber", "Megan", "Jade", "Leah", "Hannah", "Niamh",
]
FAMILY_NAMES = [
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
    "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Thomas", "Clarke",
    "Jackson", "Wood", "Harris", "Edwards", "Turner", "Martin", "Cooper", "Hill", "Ward", "Hughes",
    "Moore", "Clark", "King", "Harrison", "Lewis", "Baker", "Lee", "Allen", "Morris", "Khan",
    "Scott", "Watson", "Davis", "Parker", "James", "Bennett", "Young", "Phillips", "Richardson", "Mitchell",
    "Bailey", "Carter", "Cook", "Singh", "Shaw", "Bell", "Collins", "Morgan", "Kelly", "Begum",
    "Miller", "Cox", "Hussain", "Marshall", "Simpson", "Price", "Anderson", "Adams", "Wilkinson", "Ali",
    "Ahmed", "Foster", "Ellis", "Murphy", "Chapman", "Mason", "Gray", "Richards", "Webb", "Griffiths",
    "Hunt", "Palmer", "Campbell", "Holmes", "Mills", "Rogers", "Barnes", "Knight", "Matthews", "Barker",
    "Okafor", "Mensah", "Nowak", "Kowalski", "O'Brien", "Nguyen", "Osei", "Rahman", "Chaudhry", "Afolabi",
]

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def nhs_check_digit(first9):
    """Modulus-11 check digit for the first 9 digits, or None if the body is unusable (remainder 10)."""
    total = sum(int(c) * w for c, w in zip(first9, range(10, 1, -1)))
    check = 11 - (total % 11)
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def nhs_valid(number):
    if not re.fullmatch(r"[0-9]{10}", number):
        return False
    return nhs_check_digit(number[:9]) == int(number[9])


def new_nhs_number(rng, used):
    """A fresh, valid, unused 999-range NHS number (recorded in `used`)."""
    while True:
        body = "999" + "%06d" % rng.randrange(1000000)
        check = nhs_check_digit(body)
        if check is None:
            continue
        number = body + str(check)
        if number in used:
            continue
        used.add(number)
        return number


def spaced(number):
    return "%s %s %s" % (number[:3], number[3:6], number[6:])


def rand_date(rng, lo, hi):
    """Uniform date in [lo, hi] inclusive."""
    return lo + dt.timedelta(days=rng.randint(0, (hi - lo).days))


def years_before(date, years):
    try:
        return date.replace(year=date.year - years)
    except ValueError:  # 29 February
        return date.replace(year=date.year - years, day=28)


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_csv(path, header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
    return len(rows)


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def iso(d):
    return d.isoformat() if d else ""


# ---------------------------------------------------------------------------
# 1. Local authorities
# ---------------------------------------------------------------------------


def build_local_authorities():
    las = sorted(LOCAL_AUTHORITIES)
    rows = []
    for i, (code, name) in enumerate(las, start=1):
        rows.append([
            code,
            name,
            "01632 960%03d" % i,     # Ofcom drama range 01632 960000-960999
            "020 7946 0%03d" % i,    # Ofcom drama range 020 7946 0000-0999
            "cpis@%s.example.gov.uk" % slug(name),
            "LA%03dOT" % i,
            office_hours(i),
        ])
    return rows


def office_hours(i):
    """Most LAs keep the standard hours; some close early on Fridays; some leave the column
    empty, which cpis reads as the standard Mon-Fri 09:00-17:00."""
    if i % 10 == 0:
        return "Mon-Thu 08:30-17:00; Fri 08:30-16:30"
    if i % 7 == 0:
        return ""
    return "Mon-Fri 09:00-17:00"


# ---------------------------------------------------------------------------
# 2. Care settings
# ---------------------------------------------------------------------------


def build_care_settings():
    # Contact numbers from Ofcom's drama range (0113 496 0000-0999): fake, never a real line.
    return [["RDEMO%02d" % i, name, stype, "0113 496 0%03d" % i]
            for i, (name, stype) in enumerate(CARE_SETTINGS, start=1)]


# ---------------------------------------------------------------------------
# 3. Demographics
# ---------------------------------------------------------------------------

N_CHILDREN_ACTIVE = 1920
N_CHILDREN_SUPERSEDED = 60
N_CHILDREN_INACTIVE = 20
N_CHILDREN_SENSITIVE = 40
N_MOTHERS = 100
N_MOTHERS_SENSITIVE = 2


class Person:
    def __init__(self, nhs, dob, kind, status="active", superseded_by="", sensitive=False):
        self.nhs = nhs
        self.dob = dob
        self.kind = kind  # "child" | "mother"
        self.status = status
        self.superseded_by = superseded_by
        self.sensitive = sensitive
        self.given = ""
        self.family = ""


def build_demographics(rng, used):
    child_lo = years_before(REF_DATE, 17) + dt.timedelta(days=1)   # 2009-11-02
    child_hi = REF_DATE - dt.timedelta(days=17)                    # 2026-10-15
    mother_lo = years_before(REF_DATE, 40) + dt.timedelta(days=1)  # 1986-11-02
    mother_hi = years_before(REF_DATE, 16)                         # 2010-11-01

    children = []
    for _ in range(N_CHILDREN_ACTIVE):
        p = Person(new_nhs_number(rng, used), rand_date(rng, child_lo, child_hi), "child")
        if rng.random() < 0.5:
            p.given = rng.choice(BOY_NAMES)
        else:
            p.given = rng.choice(GIRL_NAMES)
        p.family = rng.choice(FAMILY_NAMES)
        children.append(p)
    for p in rng.sample(children, N_CHILDREN_SENSITIVE):
        p.sensitive = True

    # Superseded numbers: an old number merged into an existing active child (same DOB).
    targets = rng.sample([c for c in children if not c.sensitive], N_CHILDREN_SUPERSEDED)
    superseded = []
    for t in targets:
        superseded.append(Person(new_nhs_number(rng, used), t.dob, "child",
                                 status="superseded", superseded_by=t.nhs))
    inactive = []
    for _ in range(N_CHILDREN_INACTIVE):
        inactive.append(Person(new_nhs_number(rng, used), rand_date(rng, child_lo, child_hi), "child",
                               status="inactive"))

    mothers = []
    for _ in range(N_MOTHERS):
        p = Person(new_nhs_number(rng, used), rand_date(rng, mother_lo, mother_hi), "mother")
        p.given = rng.choice(GIRL_NAMES)
        p.family = rng.choice(FAMILY_NAMES)
        mothers.append(p)
    for p in rng.sample(mothers, N_MOTHERS_SENSITIVE):
        p.sensitive = True

    everyone = children + superseded + inactive + mothers
    rows = []
    for p in sorted(everyone, key=lambda p: p.nhs):
        rows.append([p.nhs, p.status, p.superseded_by, p.dob.isoformat(), "true" if p.sensitive else "false"])
    return rows, children, superseded, inactive, mothers


# ---------------------------------------------------------------------------
# 4. LA uploads
# ---------------------------------------------------------------------------

PLAN_WINDOW_LO = dt.date(2024, 1, 1)
PLAN_WINDOW_HI = REF_DATE - dt.timedelta(days=1)        # 2026-10-31
OLD_END_HI = REF_DATE - dt.timedelta(days=366)          # 2025-10-31: ended > 365 days before REF_DATE
RECENT_END_LO = REF_DATE - dt.timedelta(days=365)       # 2025-11-01
EDD_LO = dt.date(2026, 9, 1)
EDD_HI = dt.date(2027, 4, 30)


def plan_dates(rng, dob, force_open=False, force_recent_end=False):
    """(start, end) for a CPP/LAC plan: start in 2024-2026, ~15% ended (some long ago, most recently)."""
    lo = max(PLAN_WINDOW_LO, dob + dt.timedelta(days=1))
    ended = force_recent_end or (not force_open and rng.random() < 0.15)
    if not ended:
        return rand_date(rng, lo, PLAN_WINDOW_HI), None
    old = (not force_recent_end) and rng.random() < 0.3
    if old and lo <= OLD_END_HI - dt.timedelta(days=60):
        start = rand_date(rng, lo, OLD_END_HI - dt.timedelta(days=60))
        end = rand_date(rng, start + dt.timedelta(days=30), OLD_END_HI)
        return start, end
    if lo <= PLAN_WINDOW_HI - dt.timedelta(days=30):
        start = rand_date(rng, lo, PLAN_WINDOW_HI - dt.timedelta(days=30))
        end = rand_date(rng, max(start + dt.timedelta(days=14), RECENT_END_LO), PLAN_WINDOW_HI)
        return start, end
    return rand_date(rng, lo, PLAN_WINDOW_HI), None


def ucpp_dates(rng):
    edd = rand_date(rng, EDD_LO, EDD_HI)
    lo = max(PLAN_WINDOW_LO, edd - dt.timedelta(days=252))
    hi = min(PLAN_WINDOW_HI, edd - dt.timedelta(days=14))
    return rand_date(rng, lo, hi), edd


def upload_row(p, local_id, plan_type, start, end=None, edd=None, nhs_text=None, sensitive=None):
    if sensitive is None:
        sensitive = p.sensitive
    return [
        "upsert",
        nhs_text if nhs_text is not None else p.nhs,
        local_id,
        p.given,
        p.family,
        p.dob.isoformat(),
        plan_type,
        iso(start),
        iso(end),
        iso(edd),
        "true" if sensitive else "false",
    ]


def build_uploads(rng, children, mothers, reserved_children, reserved_mothers):
    """Returns {ods: [rows]}, the worked-example shared child, list of shared children and their LA pairs."""
    reserved = set(p.nhs for p in reserved_children + reserved_mothers)
    child_pool = [c for c in children if c.nhs not in reserved]
    mother_pool = [m for m in mothers if m.nhs not in reserved]
    rng.shuffle(child_pool)
    rng.shuffle(mother_pool)

    codes = [code for code, _ in UPLOAD_LAS]
    prefix = dict(UPLOAD_LAS)

    # --- children shared by two LAs (moved area) ---
    shared = []  # (child, la_from, la_to)
    worked = next(c for c in child_pool if not c.sensitive
                  and c.dob <= REF_DATE - dt.timedelta(days=3 * 365))
    child_pool.remove(worked)
    shared.append((worked, COVENTRY, WESTMINSTER))
    pairs = [(a, b) for a in codes for b in codes if a != b and {a, b} != {COVENTRY, WESTMINSTER}]
    for pair in rng.sample(pairs, 9):
        shared.append((child_pool.pop(), pair[0], pair[1]))

    # per-LA entries: list of (person, [plan specs])
    entries = {code: [] for code in codes}

    # worked example: an open CPP in both Coventry and Westminster
    ws_a = rand_date(rng, dt.date(2025, 3, 1), dt.date(2025, 9, 30))
    ws_b = rand_date(rng, dt.date(2026, 5, 1), dt.date(2026, 9, 30))
    entries[COVENTRY].append((worked, [("CPP", ws_a, None, None)]))
    entries[WESTMINSTER].append((worked, [("CPP", ws_b, None, None)]))
    for child, la_from, la_to in shared[1:]:
        if rng.random() < 0.5:
            # moved: old LA's plan ended recently, new LA opened a plan around the move
            s1, e1 = plan_dates(rng, child.dob, force_recent_end=True)
            s2 = rand_date(rng, max(e1 - dt.timedelta(days=14), child.dob + dt.timedelta(days=1)),
                           PLAN_WINDOW_HI)
            e2 = None
        else:
            s1, e1 = plan_dates(rng, child.dob, force_open=True)
            s2, e2 = plan_dates(rng, child.dob, force_open=True)
        pt = "CPP" if rng.random() < 0.7 else "LAC"
        entries[la_from].append((child, [(pt, s1, e1, None)]))
        entries[la_to].append((child, [(pt, s2, e2, None)]))

    # --- per-LA own children, dual-plan children and UCPP mothers ---
    for code in codes:
        target_rows = rng.randint(165, 250)
        n_ucpp = rng.randint(5, 11)
        n_dual = rng.randint(2, 5)
        rows_so_far = sum(len(plans) for _, plans in entries[code])
        n_single = target_rows - rows_so_far - n_ucpp - 2 * n_dual
        for _ in range(n_ucpp):
            m = mother_pool.pop()
            start, edd = ucpp_dates(rng)
            entries[code].append((m, [("UCPP", start, None, edd)]))
        for _ in range(n_dual):
            c = child_pool.pop()
            s1, e1 = plan_dates(rng, c.dob)
            s2, e2 = plan_dates(rng, c.dob, force_open=True)
            entries[code].append((c, [("CPP", s1, e1, None), ("LAC", s2, e2, None)]))
        for _ in range(n_single):
            c = child_pool.pop()
            pt = "CPP" if rng.random() < 0.55 else "LAC"
            s, e = plan_dates(rng, c.dob)
            entries[code].append((c, [(pt, s, e, None)]))

    # --- assign local ids (LA's own case numbering) and render rows ---
    uploads = {}
    local_ids = {}
    for code in codes:
        ents = entries[code]
        rng.shuffle(ents)
        n = rng.randint(100, 4000)
        rows = []
        for person, plans in ents:
            n += rng.randint(1, 9)
            lid = "%s-%06d" % (prefix[code], n)
            local_ids[(code, person.nhs)] = lid
            for plan_type, start, end, edd in plans:
                nhs_text = spaced(person.nhs) if rng.random() < 0.10 else person.nhs
                rows.append(upload_row(person, lid, plan_type, start, end, edd, nhs_text=nhs_text))
        uploads[code] = rows
    return uploads, worked, shared, local_ids


# ---------------------------------------------------------------------------
# 5. Coventry error-exercising delta file
# ---------------------------------------------------------------------------


def build_errors_file(rng, used, reserved_children, reserved_mothers, sensitive_child, superseded,
                      coventry_rows, shared_numbers):
    c = list(reserved_children)  # 8 non-sensitive active children, not in any other file
    m = list(reserved_mothers)   # 2 active non-sensitive mothers, not in any other file
    rows = []
    expect = []

    def add(row, code, why):
        rows.append(row)
        expect.append((code, why))

    seq = [90000]

    def lid():
        seq[0] += rng.randint(1, 9)
        return "COV-%06d" % seq[0]

    # CPR01: valid 999-range number that is not in the demographics index
    ghost_nhs = new_nhs_number(rng, used)
    ghost = Person(ghost_nhs, dt.date(2019, 6, 14), "child")
    ghost.given, ghost.family = "Kyle", "Ashworth"
    add(upload_row(ghost, lid(), "CPP", dt.date(2026, 9, 3)), "CPR01",
        "NHS number %s passes the check digit but is not in demographics.csv" % ghost_nhs)

    # CPR02: S-flagged child without sensitive=true
    add(upload_row(sensitive_child, lid(), "CPP", dt.date(2026, 8, 20), sensitive=False), "CPR02",
        "child is sensitive (S-flag) in demographics.csv but the row says sensitive=false")

    # CPR03: date of birth mismatch
    p = c[0]
    r = upload_row(p, lid(), "LAC", dt.date(2026, 7, 1))
    r[5] = (p.dob + dt.timedelta(days=397)).isoformat()
    add(r, "CPR03", "date_of_birth %s but demographics.csv has %s" % (r[5], p.dob.isoformat()))

    # CPR04: bad check digit
    p = c[1]
    bad = p.nhs[:9] + str((int(p.nhs[9]) + 1) % 10)
    assert not nhs_valid(bad)
    add(upload_row(p, lid(), "CPP", dt.date(2026, 6, 11), nhs_text=bad), "CPR04",
        "NHS number %s has a wrong check digit (valid would be %s)" % (bad, p.nhs))

    # CPR04: only 9 digits
    p = c[2]
    add(upload_row(p, lid(), "CPP", dt.date(2026, 5, 5), nhs_text=p.nhs[:9]), "CPR04",
        "NHS number %s has only 9 digits" % p.nhs[:9])

    # CPR05: superseded number (DOB matches the index)
    s = superseded[0]
    sp = Person(s.nhs, s.dob, "child")
    sp.given, sp.family = "Mason", "Whitfield"
    add(upload_row(sp, lid(), "CPP", dt.date(2026, 4, 22)), "CPR05",
        "NHS number %s is superseded by %s (the reply carries the new number)" % (s.nhs, s.superseded_by))

    # CPR06: good rows
    p = c[3]
    dup_source = upload_row(p, lid(), "CPP", dt.date(2026, 10, 2))
    add(dup_source, "CPR06", "new CPP, open")
    p = c[4]
    add(upload_row(p, lid(), "LAC", dt.date(2026, 9, 14), nhs_text=spaced(p.nhs)), "CPR06",
        "new LAC, NHS number written with spaces (allowed)")
    # end an existing open Coventry CPP (the Coventry child that is not shared with another LA)
    existing = next(r for r in coventry_rows if r[6] == "CPP" and not r[8] and r[10] == "false"
                    and " " not in r[1] and r[7] < "2026-09-01" and r[1] not in shared_numbers)
    ended = list(existing)
    ended[8] = "2026-10-28"
    add(ended, "CPR06", "ends Coventry's existing CPP for %s (%s) on 2026-10-28" % (existing[1], existing[2]))
    mo = m[0]
    start, edd = dt.date(2026, 7, 20), dt.date(2027, 2, 11)
    add(upload_row(mo, lid(), "UCPP", start, edd=edd), "CPR06", "new UCPP on the mother's NHS number with EDD")

    # CPR07: other validation failures
    p = c[5]
    r = upload_row(p, lid(), "CPP", None)
    r[7] = "2025-02-30"
    add(r, "CPR07", "start_date 2025-02-30 is not a real date")
    p = c[6]
    add(upload_row(p, lid(), "CPP", dt.date(2026, 3, 10), end=dt.date(2026, 1, 15)), "CPR07",
        "end_date 2026-01-15 is before start_date 2026-03-10")
    p = c[7]
    add(upload_row(p, lid(), "XYZ", dt.date(2026, 2, 2)), "CPR07", "unknown plan_type XYZ")
    mo = m[1]
    add(upload_row(mo, lid(), "UCPP", dt.date(2026, 8, 3)), "CPR07", "UCPP without expected_delivery_date")
    add(list(dup_source), "CPR07",
        "exact duplicate of row %d (same nhs_number and plan_type); the first occurrence is accepted"
        % (rows.index(dup_source) + 1))
    return rows, expect


# ---------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------


def render_readme(counts, worked, worked_rows, shared, errors_rows, errors_expect, la_names):
    out = []
    a = out.append
    a("# cpis demo data set")
    a("")
    a("Synthetic data for demonstrations, manual testing and benchmarks. **Generated — do not edit by hand.**")
    a("Regenerate with `python3 demo/generate.py` (Python 3, standard library only, fixed seed %d:" % SEED)
    a("re-running it produces byte-identical files). The data are anchored to a fixed \"today\" of **%s**."
      % REF_DATE.isoformat())
    a("")
    a("Nothing here identifies a real person: NHS numbers are in the `999` test range (with valid modulus-11")
    a("check digits), phone numbers are Ofcom drama-reserved numbers (`01632 960xxx`, `020 7946 0xxx`),")
    a("e-mail addresses use `example` domains and names are random combinations of common names.")
    a("Local authority names and ONS GSS codes are real, public data.")
    a("")
    a("All files: UTF-8, LF line endings, comma separated, header row, fields quoted only when needed.")
    a("")
    a("## Files")
    a("")
    a("| File | Rows | Content |")
    a("|---|---:|---|")
    for name, n, what in counts:
        a("| `%s` | %d | %s |" % (name, n, what))
    a("")
    a("### local_authorities.csv")
    a("")
    a("`ods_code,name,office_hours_phone,edt_phone,secure_email,mesh_mailbox,office_hours`")
    a("")
    a("The 152 English upper-tier local authorities with children's social care responsibility as they stood")
    a("from April 2014 to March 2019 (27 county councils, 36 metropolitan boroughs, 33 London boroughs including")
    a("the City of London, 56 unitary authorities including the Isles of Scilly), keyed by their ONS GSS code.")
    a("Later reorganisations (Dorset/BCP 2019, Buckinghamshire 2020, Northamptonshire 2021, Cumbria, North")
    a("Yorkshire and Somerset 2023) are not reflected. Phones, e-mail and MESH mailbox ids (`LA001OT`…) are fake.")
    a("Office hours are UK local time, `Mon-Fri 09:00-17:00` for most; every tenth closes early on Fridays")
    a("(`Mon-Thu 08:30-17:00; Fri 08:30-16:30`) and some leave the column empty (read as `Mon-Fri 09:00-17:00`).")
    a("Sorted by `ods_code`.")
    a("")
    a("### care_settings.csv")
    a("")
    a("`ods_code,name,setting_type,phone`")
    a("")
    a("Fictional care settings with fake ODS codes `RDEMO01`…; every setting type in SPEC §1 appears at least twice.")
    a("Contact numbers are fake (Ofcom's drama range 0113 496 0xxx).")
    a("")
    a("### demographics.csv")
    a("")
    a("`nhs_number,status,superseded_by,date_of_birth,sensitive`")
    a("")
    a("The demographics index (PDS stand-in) extract: children aged 0–17 and mothers aged 16–40 on %s."
      % REF_DATE.isoformat())
    a("`status` is `active`, `superseded` (then `superseded_by` holds the active replacement number, with the")
    a("same date of birth) or `inactive`; `sensitive` is `true`/`false` (S-flag). Sorted by `nhs_number`.")
    a("")
    a("### uploads/<ods_code>.csv")
    a("")
    a("LA upload files, format `%s`:" % FORMAT_VERSION)
    a("")
    a("`%s`" % ",".join(UPLOAD_HEADER))
    a("")
    a("One row per plan, all `upsert`, intended as each LA's first **full** upload (they also load fine as")
    a("delta). They use only active NHS numbers whose date of birth matches `demographics.csv`; about 10% of")
    a("NHS numbers are written with spaces (`999 123 4567`), which is allowed. `sensitive=true` exactly for")
    a("S-flagged people. UCPP rows carry the mother's NHS number and date of birth and an expected delivery date")
    a("between 2026-09-01 and 2027-04-30. About 15% of CPP/LAC plans have an end date, mostly within the last")
    a("365 days, some longer ago (those are past the visibility window). A few children hold both CPP and LAC.")
    a("Children are disjoint between LAs except 10 children shared by two LAs (moved area).")
    a("")
    a("| ODS code | LA | Rows |")
    a("|---|---|---:|")
    for code, _ in UPLOAD_LAS:
        a("| %s | %s | %d |" % (code, la_names[code], dict((c[0], c[1]) for c in counts)["uploads/%s.csv" % code]))
    a("")
    a("## Worked examples")
    a("")
    a("### A child known to two local authorities")
    a("")
    a("NHS number **%s** (date of birth %s) has an active (open) Child Protection Plan in **both** Coventry"
      % (worked.nhs, worked.dob.isoformat()))
    a("(`E08000026`) and Westminster (`E09000033`):")
    a("")
    a("```")
    a(",".join(UPLOAD_HEADER))
    for code, row in worked_rows:
        a(",".join(row) + "    <- uploads/%s.csv" % code)
    a("```")
    a("")
    a("After loading both files, an unscheduled lookup of %s from an emergency department returns two" % worked.nhs)
    a("records (one per LA, each with that LA's office-hours and EDT phones) and creates one `access`")
    a("notification for Coventry and one for Westminster.")
    a("")
    a("The other children shared by two LAs:")
    a("")
    a("| NHS number | LAs |")
    a("|---|---|")
    for child, la_from, la_to in shared[1:]:
        a("| %s | %s, %s |" % (child.nhs, la_names[la_from], la_names[la_to]))
    a("")
    a("### uploads/errors-E08000026.csv — every per-record outcome")
    a("")
    a("A small Coventry **delta** file, meant to be loaded after `uploads/E08000026.csv` (and `demographics.csv`),")
    a("with one or more rows per outcome code. Row numbers are 1-based data rows (the header is not counted).")
    a("Expected file outcome: `CPF03` (partial: %d rows applied, %d rejected)."
      % (sum(1 for c, _ in errors_expect if c == "CPR06"), sum(1 for c, _ in errors_expect if c != "CPR06")))
    a("")
    a("| Row | NHS number (as written) | Plan | Expected | Why |")
    a("|---:|---|---|---|---|")
    for i, (row, (code, why)) in enumerate(zip(errors_rows, errors_expect), start=1):
        a("| %d | `%s` | %s | %s | %s |" % (i, row[1], row[6], code, why))
    a("")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------


def reference_outcomes(rows, index):
    """Independent re-derivation of SPEC rule 5 outcome codes for a delta file (used to check the README table)."""
    out = []
    seen = set()
    for r in rows:
        n = r["nhs_number"].replace(" ", "")
        if not nhs_valid(n):
            out.append("CPR04")
            continue
        d = index.get(n)
        if d is None:
            out.append("CPR01")
            continue
        if d["status"] == "superseded":
            out.append("CPR05")
            continue
        if d["sensitive"] == "true" and r["sensitive"] != "true":
            out.append("CPR02")
            continue
        if r["date_of_birth"] != d["date_of_birth"]:
            out.append("CPR03")
            continue
        try:
            start = dt.date.fromisoformat(r["start_date"])
            end = dt.date.fromisoformat(r["end_date"]) if r["end_date"] else None
            edd = dt.date.fromisoformat(r["expected_delivery_date"]) if r["expected_delivery_date"] else None
        except ValueError:
            out.append("CPR07")
            continue
        key = (n, r["plan_type"])
        if (r["plan_type"] not in ("CPP", "LAC", "UCPP") or (end and end < start)
                or (r["plan_type"] == "UCPP" and not edd) or key in seen):
            out.append("CPR07")
            continue
        seen.add(key)
        out.append("CPR06")
    return out


def self_check(outdir, errors_expect):
    las = read_csv(os.path.join(outdir, "local_authorities.csv"))
    assert len(las) == 152, len(las)
    codes = [r["ods_code"] for r in las]
    assert codes == sorted(codes) and len(set(codes)) == 152
    for r in las:
        assert re.fullmatch(r"[A-Z0-9]{3,10}", r["ods_code"]), r
        assert re.fullmatch(r"01632 960[0-9]{3}", r["office_hours_phone"]), r
        assert re.fullmatch(r"020 7946 0[0-9]{3}", r["edt_phone"]), r
    assert len(set(r["office_hours_phone"] for r in las)) == 152
    assert len(set(r["edt_phone"] for r in las)) == 152
    assert len(set(r["mesh_mailbox"] for r in las)) == 152
    assert len(set(r["secure_email"] for r in las)) == 152
    kinds = {}
    for c in codes:
        kinds[c[:3]] = kinds.get(c[:3], 0) + 1
    assert kinds == {"E06": 56, "E08": 36, "E09": 33, "E10": 27}, kinds

    cs = read_csv(os.path.join(outdir, "care_settings.csv"))
    assert len(set(r["ods_code"] for r in cs)) == len(cs)
    for r in cs:
        assert re.fullmatch(r"[A-Z0-9]{3,10}", r["ods_code"]), r
        assert r["setting_type"] in SETTING_TYPES, r
    for t in SETTING_TYPES:
        assert sum(1 for r in cs if r["setting_type"] == t) >= 2, t

    demo = read_csv(os.path.join(outdir, "demographics.csv"))
    index = {}
    for r in demo:
        n = r["nhs_number"]
        assert n.startswith("999") and nhs_valid(n), n          # tools-check: modulus 11
        assert n not in index, n
        assert r["status"] in ("active", "superseded", "inactive"), r
        assert r["sensitive"] in ("true", "false"), r
        dt.date.fromisoformat(r["date_of_birth"])
        index[n] = r
    for r in demo:
        if r["status"] == "superseded":
            tgt = index[r["superseded_by"]]
            assert tgt["status"] == "active" and tgt["date_of_birth"] == r["date_of_birth"], r
        else:
            assert r["superseded_by"] == "", r

    owners = {}
    for code, _ in UPLOAD_LAS:
        path = os.path.join(outdir, "uploads", code + ".csv")
        with open(path, encoding="utf-8", newline="") as f:
            assert f.readline() == ",".join(UPLOAD_HEADER) + "\n"
        rows = read_csv(path)
        assert 150 <= len(rows) <= 300, (code, len(rows))
        seen = set()
        for r in rows:
            n = r["nhs_number"].replace(" ", "")
            d = index[n]
            assert nhs_valid(n) and d["status"] == "active", r
            assert r["date_of_birth"] == d["date_of_birth"], r
            assert r["sensitive"] == d["sensitive"], r
            assert r["plan_type"] in ("CPP", "LAC", "UCPP"), r
            assert (n, r["plan_type"]) not in seen, r
            seen.add((n, r["plan_type"]))
            start = dt.date.fromisoformat(r["start_date"])
            assert PLAN_WINDOW_LO <= start < REF_DATE, r
            if r["end_date"]:
                assert start <= dt.date.fromisoformat(r["end_date"]) < REF_DATE, r
            if r["plan_type"] == "UCPP":
                assert EDD_LO <= dt.date.fromisoformat(r["expected_delivery_date"]) <= EDD_HI, r
            else:
                assert r["expected_delivery_date"] == "", r
                assert start > dt.date.fromisoformat(r["date_of_birth"]), r
            owners.setdefault(n, set()).add(code)
    multi = [n for n, s in owners.items() if len(s) > 1]
    assert len(multi) == 10 and all(len(owners[n]) == 2 for n in multi), multi

    errs = read_csv(os.path.join(outdir, "uploads", "errors-%s.csv" % COVENTRY))
    assert reference_outcomes(errs, index) == [code for code, _ in errors_expect]
    assert set(code for code, _ in errors_expect) == set("CPR0%d" % i for i in range(1, 8))
    for r in errs:  # rows for new people must not collide with other LAs' children
        n = r["nhs_number"].replace(" ", "")
        assert owners.get(n, {COVENTRY}) == {COVENTRY}, r


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    rng = random.Random(SEED)
    used = set()

    la_rows = build_local_authorities()
    assert len(la_rows) == 152
    la_names = {r[0]: r[1] for r in la_rows}
    cs_rows = build_care_settings()

    demo_rows, children, superseded, inactive, mothers = build_demographics(rng, used)

    # people reserved for the errors file (not in any LA's main upload)
    ordinary = [c for c in children if not c.sensitive and c.dob <= dt.date(2023, 1, 1)]
    targets = set(s.superseded_by for s in superseded)
    ordinary = [c for c in ordinary if c.nhs not in targets]
    res_children = ordinary[:8]
    sensitive_child = next(c for c in children if c.sensitive and c.dob <= dt.date(2023, 1, 1))
    res_mothers = [m for m in mothers if not m.sensitive][:2]

    uploads, worked, shared, _ = build_uploads(
        rng, children, mothers,
        res_children + [sensitive_child], res_mothers)
    shared_numbers = set(c.nhs for c, _, _ in shared)

    err_rows, err_expect = build_errors_file(rng, used, res_children, res_mothers, sensitive_child,
                                             superseded, uploads[COVENTRY], shared_numbers)

    counts = []
    n = write_csv(os.path.join(outdir, "local_authorities.csv"),
                  ["ods_code", "name", "office_hours_phone", "edt_phone", "secure_email", "mesh_mailbox",
                   "office_hours"], la_rows)
    counts.append(("local_authorities.csv", n, "LA directory"))
    n = write_csv(os.path.join(outdir, "care_settings.csv"), ["ods_code", "name", "setting_type", "phone"], cs_rows)
    counts.append(("care_settings.csv", n, "care-setting directory"))
    n = write_csv(os.path.join(outdir, "demographics.csv"),
                  ["nhs_number", "status", "superseded_by", "date_of_birth", "sensitive"], demo_rows)
    counts.append(("demographics.csv", n, "demographics index: %d children (%d active, %d superseded, %d inactive), "
                   "%d mothers" % (len(children) + len(superseded) + len(inactive), len(children),
                                   len(superseded), len(inactive), len(mothers))))
    for code, _ in UPLOAD_LAS:
        n = write_csv(os.path.join(outdir, "uploads", code + ".csv"), UPLOAD_HEADER, uploads[code])
        counts.append(("uploads/%s.csv" % code, n, "%s upload" % la_names[code]))
    n = write_csv(os.path.join(outdir, "uploads", "errors-%s.csv" % COVENTRY), UPLOAD_HEADER, err_rows)
    counts.append(("uploads/errors-%s.csv" % COVENTRY, n, "Coventry delta exercising every outcome code"))

    worked_rows = []
    for code in (COVENTRY, WESTMINSTER):
        for r in uploads[code]:
            if r[1].replace(" ", "") == worked.nhs:
                worked_rows.append((code, r))
    readme = render_readme(counts, worked, worked_rows, shared, err_rows, err_expect, la_names)
    with open(os.path.join(outdir, "README.md"), "w", encoding="utf-8", newline="") as f:
        f.write(readme)

    self_check(outdir, err_expect)
    for name, n, _ in counts:
        print("%-32s %5d rows" % (name, n))
    print("shared child (Coventry + Westminster, open CPP in both): %s" % worked.nhs)


if __name__ == "__main__":
    main()
