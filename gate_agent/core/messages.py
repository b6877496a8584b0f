"""Words for people: every outcome, reason code and next step in Chinese and English."""

from __future__ import annotations

from typing import Literal

from gate_agent.core.reasons import NextStep, Outcome, Reason

Language = Literal["zh", "en"]

OUTCOMES: dict[Outcome, tuple[str, str]] = {
    Outcome.ALLOW: ("通过", "Allowed"),
    Outcome.DENY: ("禁止通行", "Denied"),
    Outcome.RECHECK: ("请复检", "Re-check"),
}

REASONS: dict[Reason, tuple[str, str]] = {
    Reason.OK: ("核验通过", "Checked"),
    Reason.NOT_A_PASS: ("不是本社区通行证", "Not a gate pass"),
    Reason.TOO_LONG: ("二维码内容过长，不是通行证", "Code too long to be a pass"),
    Reason.NOT_ASCII: ("二维码含非法字符，不是通行证", "Code has characters no pass has"),
    Reason.UNKNOWN_VERSION: ("通行证版本不支持，请更新", "Pass format version not supported"),
    Reason.TRUNCATED: ("通行证不完整，请重新扫码", "Pass incomplete; scan again"),
    Reason.MALFORMED: ("通行证格式错误", "Pass is malformed"),
    Reason.UNKNOWN_KEY: ("签发机构未知", "Issued by an unknown key"),
    Reason.KEY_RETIRED: ("签发密钥已停用，请换新证", "Issuing key retired; get a new pass"),
    Reason.BAD_SIGNATURE: ("通行证被篡改或伪造", "Pass altered or forged"),
    Reason.NOT_YET_VALID: ("通行证尚未生效", "Pass not yet valid"),
    Reason.EXPIRED: ("通行证已过期", "Pass expired"),
    Reason.REVOKED: ("通行证已作废", "Pass revoked"),
    Reason.OUT_OF_SCOPE: ("非本小区通行证", "Pass not valid at this gate"),
    Reason.QUARANTINED_EXIT: ("居家隔离中，不得外出", "Household in isolation: may not go out"),
    Reason.LOCKDOWN_RESIDENTS_ONLY: ("封闭管理，仅限本小区居民", "Lockdown: residents only"),
    Reason.ALREADY_INSIDE: ("已在小区内，重复进入", "Already inside"),
    Reason.ALREADY_OUTSIDE: ("已外出，重复出门", "Already outside"),
    Reason.QUOTA_USED: ("本户外出次数已用完", "Household exit quota used"),
    Reason.PASS_USED: ("一次性通行证已使用，不能再次进入", "One-time pass already used to enter"),
    Reason.TEMPERATURE_MISSING: ("未测得体温", "No temperature reading"),
    Reason.SENSOR_WARMING_UP: (
        "测温仪预热中，请用手持体温计",
        "Thermometer warming up: use the handheld",
    ),
    Reason.AMBIENT_OUT_OF_RANGE: (
        "环境温度超出测温范围，请用手持体温计",
        "Air too cold or hot for the sensor: use the handheld",
    ),
    Reason.NO_PERSON_AT_SENSOR: (
        "未检测到额头，请靠近测温仪",
        "No forehead at the sensor: step closer",
    ),
    Reason.SENSOR_FAULT: ("测温仪故障，请用手持体温计", "Thermometer fault: use the handheld"),
    Reason.TEMPERATURE_IMPLAUSIBLE: ("体温读数异常", "Temperature reading implausible"),
    Reason.RECHECK_TEMPERATURE: ("体温偏高，请复测", "Temperature high: measure again"),
    Reason.FEVER: ("发热，禁止进入", "Fever: entry refused"),
    Reason.HOST_IN_ISOLATION: ("被访住户居家隔离中，谢绝来访", "Household visited is in isolation"),
    Reason.MANUAL_RELEASE: ("保安人工放行", "Opened by the guard"),
    Reason.GUARD_OVERRIDE: ("保安特批放行", "Let through by the guard's override"),
}

NEXT_STEPS: dict[NextStep, tuple[str, str]] = {
    NextStep.LET_THROUGH: ("放行", "Let the person through"),
    NextStep.ASK_FOR_VALID_PASS: ("请出示有效通行证", "Ask for a valid pass"),
    NextStep.MANUAL_LOOKUP: ("人工查询住户信息", "Look the resident up by hand"),
    NextStep.CALL_COMMUNITY_WORKER: ("联系社区工作人员", "Call a community worker"),
    NextStep.MEASURE_WITH_HANDHELD: ("用手持体温计测量", "Measure with the handheld thermometer"),
    NextStep.FACE_THE_SENSOR: ("请将额头对准测温仪", "Ask the person to face the thermometer"),
    NextStep.REST_AND_REMEASURE: (
        "请在旁休息5分钟后复测",
        "Rest 5 minutes to one side, then measure again",
    ),
    NextStep.REFER_FEVER_CLINIC: (
        "引导至发热门诊并上报社区",
        "Refer to the fever clinic and report to the community",
    ),
    NextStep.STAY_HOME: ("请返回家中", "Ask the person to stay at home"),
    NextStep.TURN_AWAY: ("劝离", "Turn the person away politely"),
}


#: Why a guard may open the gate despite a refusal: chosen from this list, then free text.
OVERRIDE_REASONS: dict[str, tuple[str, str]] = {
    "known_resident": ("熟识住户，证件问题", "Known resident, pass problem"),
    "medical_emergency": ("就医或急诊", "Medical emergency"),
    "emergency_services": ("急救、消防或警察", "Ambulance, fire or police"),
    "elderly_or_child": ("老人或儿童，家属陪同", "Elderly person or child with family"),
    "device_fault": ("设备故障", "Equipment fault"),
    "other": ("其他（请说明）", "Other (explain)"),
}


def text(item: Outcome | Reason | NextStep, language: Language = "zh") -> str:
    """The words for an outcome, reason or next step in the given language."""
    if isinstance(item, Outcome):
        pair = OUTCOMES[item]
    elif isinstance(item, Reason):
        pair = REASONS[item]
    else:
        pair = NEXT_STEPS[item]
    return pair[0] if language == "zh" else pair[1]
