"""The KDD Cup 1999 / NSL-KDD record layout, shared by every reader, the model, the API and
the frontend's format page.

Kept in one place so the parser, the feature transformer, the Zeek feature derivation, the
API and the frontend all agree on column names and order.
"""

from __future__ import annotations

FEATURE_NAMES: tuple[str, ...] = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)
N_FEATURES = len(FEATURE_NAMES)  # 41
CATEGORICAL_FEATURES: tuple[str, ...] = ("protocol_type", "service", "flag")
NUMERIC_FEATURES: tuple[str, ...] = tuple(
    name for name in FEATURE_NAMES if name not in CATEGORICAL_FEATURES
)
LABEL_COLUMN = "label"
DIFFICULTY_COLUMN = "difficulty"
NORMAL_LABEL = "normal"

# Attack name -> category, after the usual NSL-KDD convention (Tavallaee et al. 2009 and the
# DARPA 1998/1999 attack taxonomy). Unknown attack names fall into "Unknown".
ATTACK_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(
        ["apache2", "back", "land", "mailbomb", "neptune", "pod", "processtable", "smurf",
         "teardrop", "udpstorm", "worm"], "DoS"),
    **dict.fromkeys(["ipsweep", "mscan", "nmap", "portsweep", "saint", "satan"], "Probe"),
    **dict.fromkeys(
        ["ftp_write", "guess_passwd", "httptunnel", "imap", "multihop", "named", "phf",
         "sendmail", "snmpgetattack", "snmpguess", "spy", "warezclient", "warezmaster",
         "xlock", "xsnoop"], "R2L"),
    **dict.fromkeys(
        ["buffer_overflow", "loadmodule", "perl", "ps", "rootkit", "sqlattack", "xterm"],
        "U2R"),
}
ATTACK_CATEGORY_ORDER: tuple[str, ...] = ("DoS", "Probe", "R2L", "U2R", "Unknown")
SEVERITIES: tuple[str, ...] = ("Normal", "Low", "Medium", "High", "Critical")


def attack_category(label: str) -> str:
    """Category of a normalised label: "Normal", a known category, or "Unknown"."""
    if label == NORMAL_LABEL:
        return "Normal"
    return ATTACK_CATEGORIES.get(label, "Unknown")
