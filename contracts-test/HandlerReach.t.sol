// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {log} from "./Vm.sol";
import {EhrHandler} from "./EhrHandler.sol";

/// @notice The handler reaches every path the invariants speak about: fixed pseudo-random runs
/// shaped like the fuzzer's (8 fresh handlers, 400 calls each, the same 18 actions) must produce
/// reads by patients, grantees and break-glass providers, batches, amendments, tombstones, signed
/// grants, revocations (signed ones too), signatures relayed after other decisions, and
/// suspensions, and no violation. The totals are logged.
contract HandlerReachTest {
    uint256 private constant RUNS = 8;
    uint256 private constant DEPTH = 400;

    // Totals over the runs: reads, emergency reads, records, batches, amendments, tombstones,
    // grants, signed grants, revocations, break-glass confirmations, suspensions, signed
    // revocations, held signatures relayed later, signed revocations that ended a grant relayed
    // after they were signed.
    uint256[14] private _totals;

    function test_handlerReachesEveryPath() public {
        bytes32 rng = keccak256("ehr-forge-reach");
        for (uint256 run = 0; run < RUNS; ++run) {
            EhrHandler h = new EhrHandler();
            for (uint256 i = 0; i < DEPTH; ++i) {
                rng = keccak256(abi.encode(rng));
                _step(h, uint256(rng));
            }
            require(bytes(h.firstViolation()).length == 0, h.firstViolation());
            _add(h);
        }
        string[14] memory names = [
            "reads", "emergency reads", "single records", "batches", "amendments", "tombstones", "grants",
            "signed grants", "revocations", "break-glass confirmations", "suspensions", "signed revocations",
            "held signatures relayed", "revocations that beat an earlier-signed grant"
        ];
        for (uint256 k = 0; k < 14; ++k) {
            log(names[k], _totals[k]);
            require(_totals[k] > 0, string.concat("the handler never reached: ", names[k]));
        }
    }

    function _step(EhrHandler h, uint256 r) private {
        uint256 a = r >> 8;
        uint256 b = r >> 72;
        uint8 c = uint8(r >> 136);
        uint8 d = uint8(r >> 144);
        uint8 e = uint8(r >> 152);
        bool f = (r >> 160) & 1 == 1;
        uint32 w = uint32(r >> 168);
        uint256 kind = r % 18;
        if (kind == 0) h.registerPatient(a);
        else if (kind == 1) h.addRecord(a, b, c, d, e);
        else if (kind == 2) h.amendRecord(a, b, c, d, f);
        else if (kind == 3) h.tombstone(a, b, e, f);
        else if (kind == 4) h.anchorBatch(a, b, c, d, w, f, e);
        else if (kind == 5) h.requestAccess(a, b, e, f);
        else if (kind == 6) h.forgeBatched(a, b, c, d);
        else if (kind == 7) h.grant(a, b, c, d, w);
        else if (kind == 8) h.grantBySig(a, b, c, d, w, e, f);
        else if (kind == 9) h.revoke(a, b, f, e % 8 == 0);
        else if (kind == 10) h.cancelSignatures(a, b);
        else if (kind == 11) h.openBreakGlass(a, b, c);
        else if (kind == 12) h.confirmBreakGlass(a, b, uint256(c), f);
        else if (kind == 13) h.suspend(a, b, e % 8 == 0);
        else if (kind == 14) h.reinstate(a, uint64(w));
        else if (kind == 15) h.warp(w % 1200);
        else if (kind == 16) h.signRevocation(a, b, uint256(c), f);
        else h.relayHeld(a, e);
    }

    function _add(EhrHandler h) private {
        uint256[14] memory counts = [
            h.nReads(), h.nEmergencyReads(), h.nRecords(), h.nBatches(), h.nAmends(), h.nTombstones(), h.nGrants(),
            h.nSignedGrants(), h.nRevokes(), h.nBreakGlass(), h.nSuspensions(), h.nSignedRevokes(), h.nHeldRelayed(),
            h.nRevocationRaces()
        ];
        for (uint256 k = 0; k < 14; ++k) {
            _totals[k] += counts[k];
        }
    }
}
