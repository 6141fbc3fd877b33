// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {log} from "./Vm.sol";
import {EhrHandler} from "./EhrHandler.sol";

/// @notice The handler reaches every path the invariants speak about: a fixed pseudo-random
/// sequence of calls (the same mix forge's fuzzer draws from) must produce reads by patients,
/// grantees and break-glass providers, batches, amendments, tombstones, signed grants,
/// revocations and suspensions, and no violation.
contract HandlerReachTest {
    function test_handlerReachesEveryPath() public {
        EhrHandler h = new EhrHandler();
        bytes32 rng = keccak256("ehr-forge-reach");
        for (uint256 i = 0; i < 3000; ++i) {
            rng = keccak256(abi.encode(rng));
            uint256 r = uint256(rng);
            uint256 a = r >> 8;
            uint256 b = r >> 72;
            uint8 c = uint8(r >> 136);
            uint8 d = uint8(r >> 144);
            uint8 e = uint8(r >> 152);
            bool f = (r >> 160) & 1 == 1;
            uint256 kind = r % 16;
            if (kind == 0) h.registerPatient(a);
            else if (kind == 1) h.addRecord(a, b, c, d, e);
            else if (kind == 2) h.amendRecord(a, b, c, d, f);
            else if (kind == 3) h.tombstone(a, b, e % 2 == 0, f);
            else if (kind == 4) h.anchorBatch(a, b, c, d, uint32(r >> 168), f, e);
            else if (kind == 5) h.requestAccess(a, b, e, f);
            else if (kind == 6) h.forgeBatched(a, b, c, d);
            else if (kind == 7) h.grant(a, b, c, d, uint32(r >> 168));
            else if (kind == 8) h.grantBySig(a, b, c, d, uint32(r >> 168), e, f);
            else if (kind == 9) h.revoke(a, b, f, e % 8 == 0);
            else if (kind == 10) h.cancelSignatures(a, b);
            else if (kind == 11) h.openBreakGlass(a, b, c);
            else if (kind == 12) h.confirmBreakGlass(a, b, uint256(c), f);
            else if (kind == 13) h.suspend(a, b, e % 8 == 0);
            else if (kind == 14) h.reinstate(a, uint64(r >> 168));
            else h.warp(uint32(r >> 168) % 1200);
        }
        log("reads", h.nReads());
        log("emergency reads", h.nEmergencyReads());
        log("single records", h.nRecords());
        log("batches", h.nBatches());
        log("amendments", h.nAmends());
        log("tombstones", h.nTombstones());
        log("grants", h.nGrants());
        log("signed grants", h.nSignedGrants());
        log("revocations", h.nRevokes());
        log("break-glass confirmations", h.nBreakGlass());
        log("suspensions", h.nSuspensions());
        require(h.nReads() > 0 && h.nEmergencyReads() > 0, "no reads or no emergency reads");
        require(h.nRecords() > 0 && h.nBatches() > 0 && h.nAmends() > 0 && h.nTombstones() > 0, "no writes");
        require(h.nGrants() > 0 && h.nSignedGrants() > 0 && h.nRevokes() > 0, "no grants");
        require(h.nBreakGlass() > 0 && h.nSuspensions() > 0, "no break-glass or suspension");
        require(bytes(h.firstViolation()).length == 0, h.firstViolation());
    }
}
