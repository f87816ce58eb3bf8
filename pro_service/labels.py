"""Words for alerts and answers, shared by the staff pages and the FHIR export (no web imports here).

The instrument files carry each question's SMS wording but no short label for an item or a choice, so the
short words a nurse reads are kept here.
"""

from __future__ import annotations

from pro_service.models import AlertEventKind

URGENCY_LABELS = {"urgent": "Urgent", "same_day": "Same day", "routine": "Routine"}
CATEGORY_LABELS = {
    "spinal_cord_compression": "Possible spinal cord compression",
    "pathologic_fracture": "Possible pathological fracture",
    "hypercalcemia": "Possible high calcium (hypercalcaemia)",
    "spinal_metastasis_pain": "Back or neck pain with red flags",
    "new_bone_pain": "New bone pain",
    "severe_pain": "Severe pain",
    "worsening_pain": "Pain getting worse",
    "non_response": "Not answering check-ins",
    "patient_message": "Message from the patient",
    "callback_request": "Patient asked for a call back",
    "altered_consciousness": "Confusion or drowsiness",
    "breathing_chest_pain": "Breathlessness or chest pain",
    "self_harm": "Thoughts of self-harm",
    "stopped_monitoring": "Stopped monitoring",
    "possible_red_flag": "Possible red flag (wording not recognised)",
    "bone_marker_rise": "Rising alkaline phosphatase (bone marker)",
    "fall": "Fall or unsteadiness",
    "bone_pain_at_rest": "Bone pain at rest or at night",
}
CHOICE_LABELS = {
    "numbness": {0: "none", 1: "same as usual", 2: "new or worse"},
    "pain_features": {
        0: "none of these",
        1: "new",
        2: "worse at rest or at night",
        3: "worse on coughing, sneezing or straining",
        4: "like a band round the chest or belly",
    },
    "pain_site": {1: "back or neck", 2: "ribs or chest", 3: "hip or pelvis", 4: "arm or leg", 5: "elsewhere"},
    "calcium_sx": {
        0: "none",
        1: "very tired or weak",
        2: "nausea or vomiting",
        3: "poor appetite",
        4: "very thirsty or peeing a lot",
        5: "confused or drowsy",
        6: "constipated",
    },
}


def urgency_label(value: str) -> str:
    return URGENCY_LABELS.get(value, value.replace("_", " ").capitalize())


def category_label(value: str) -> str:
    return CATEGORY_LABELS.get(value, value.replace("_", " ").capitalize())


# A line of an alert's timeline, in words (AlertEventKind).
ALERT_EVENT_LABELS: dict[AlertEventKind, str] = {
    AlertEventKind.OPENED: "Alert opened",
    AlertEventKind.EVIDENCE_ADDED: "More evidence added",
    AlertEventKind.EVIDENCE_WITHDRAWN: "Evidence withdrawn",
    AlertEventKind.URGENCY_RAISED: "Urgency raised",
    AlertEventKind.NEW_SINCE_ACKNOWLEDGED: "New since acknowledged",
    AlertEventKind.PAGED: "On-call paged",
    AlertEventKind.NO_ON_CALL: "Nobody on call: care team paged",
    AlertEventKind.NOBODY_PAGED: "Nobody paged",
    AlertEventKind.SAFETY_MESSAGE: "Safety message sent to the patient",
    AlertEventKind.ACKNOWLEDGED: "Acknowledged",
    AlertEventKind.ASSIGNED: "Assigned",
    AlertEventKind.ESCALATED: "Escalated by staff",
    AlertEventKind.NOTE: "Note",
    AlertEventKind.RESOLVED: "Resolved",
    AlertEventKind.REOPENED: "Reopened",
}
