"""Result codes: every submitted item gets exactly one, from this documented enum.

Trade results are checked in this order of precedence (the first that applies is reported):

1. field checks, cheapest first: ``invalid_trade_id``, ``bad_trade_date``, ``bad_settlement_date``,
   ``invalid_quantity``, ``non_positive_quantity``, ``invalid_price``, ``non_positive_price``,
   ``buyer_equals_seller``;
2. look-ups: ``unknown_buyer``, ``unknown_seller``, ``unknown_security``, ``not_a_clearing_member``;
3. authority: ``not_party_to_trade`` (a member reports only trades it is party to; a venue reports any);
4. idempotency: ``exists`` (same id, same body: already accepted, nothing changes),
   ``exists_with_different_body`` (same id, another body), ``duplicate_in_batch`` (the id occurs
   earlier in the same batch with another body);
5. rules: ``quantity_not_lot_multiple``, ``value_too_large``, ``trade_date_in_future``,
   ``trade_date_not_business_day``, ``settlement_date_before_trade_date``,
   ``settlement_date_not_business_day``, ``settlement_date_passed``.

After rule 5 the trade is accepted (``ok``) and must be novated: nothing after that point may fail.
Submission-level results (``SubmissionStatus``) come before any item is looked at.
Imports nothing else of clearhouse.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class TradeResult(IntEnum):
    """Result of one trade in a submitted batch (stored as one byte per trade)."""

    ok = 0
    exists = 1
    invalid_trade_id = 2
    bad_trade_date = 3
    bad_settlement_date = 4
    invalid_quantity = 5
    non_positive_quantity = 6
    invalid_price = 7
    non_positive_price = 8
    buyer_equals_seller = 9
    unknown_buyer = 10
    unknown_seller = 11
    unknown_security = 12
    not_a_clearing_member = 13
    not_party_to_trade = 14
    exists_with_different_body = 15
    duplicate_in_batch = 16
    quantity_not_lot_multiple = 17
    value_too_large = 18
    trade_date_in_future = 19
    trade_date_not_business_day = 20
    settlement_date_before_trade_date = 21
    settlement_date_not_business_day = 22
    settlement_date_passed = 23


class SubmissionStatus(StrEnum):
    """Result of a whole submission, checked before its items."""

    accepted = "accepted"
    exists = "exists"  # same submission id and body: already applied, nothing changes
    exists_with_different_body = "exists_with_different_body"
    bad_signature = "bad_signature"
    unknown_submitter = "unknown_submitter"
    not_authorised = "not_authorised"  # the submitter's role may not submit this kind
    unknown_kind = "unknown_kind"
    malformed_payload = "malformed_payload"
    batch_too_large = "batch_too_large"
    rejected = "rejected"  # a command whose preconditions do not hold; the reason says which


class FailReason(StrEnum):
    """Why a settlement instruction did not settle in a cycle."""

    insufficient_securities = "insufficient_securities"
    insufficient_cash = "insufficient_cash"
    linked_instruction_failed = "linked_instruction_failed"
