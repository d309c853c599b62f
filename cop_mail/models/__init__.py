"""Tables and status enums. Importing this package registers every table on Base.metadata."""

from cop_mail.models.admins import Admin, AuditEvent, Role
from cop_mail.models.audience import (
    ConsentEvent,
    ListMembership,
    MailingList,
    Member,
    MemberEvent,
    MemberStatus,
    OptIn,
    Practice,
    Segment,
    Stream,
    Suppression,
    Tag,
    Value,
    member_practices,
    member_tags,
    member_values,
)
from cop_mail.models.campaigns import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    CampaignStatusChange,
    Delivery,
    DeliveryStatus,
)
from cop_mail.models.inbound import InboundMessage, InboundStatus
from cop_mail.models.jobs import BackgroundTask, TaskStatus

__all__ = [
    "Admin",
    "AuditEvent",
    "BackgroundTask",
    "Campaign",
    "CampaignKind",
    "CampaignStatus",
    "CampaignStatusChange",
    "ConsentEvent",
    "Delivery",
    "DeliveryStatus",
    "InboundMessage",
    "InboundStatus",
    "ListMembership",
    "MailingList",
    "Member",
    "MemberEvent",
    "MemberStatus",
    "OptIn",
    "Practice",
    "Role",
    "Segment",
    "Stream",
    "Suppression",
    "Tag",
    "TaskStatus",
    "Value",
    "member_practices",
    "member_tags",
    "member_values",
]
