// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {VM, Vm} from "./Vm.sol";
import {Consortium} from "../contracts/Consortium.sol";
import {RecordRegistry} from "../contracts/RecordRegistry.sol";
import {ConsentManager} from "../contracts/ConsentManager.sol";
import {IConsortium} from "../contracts/interfaces/IConsortium.sol";
import {IRecordRegistry} from "../contracts/interfaces/IRecordRegistry.sol";
import {IConsentManager} from "../contracts/interfaces/IConsentManager.sol";

/// @notice Drives the real Consortium, RecordRegistry and ConsentManager through every public
/// function, as patients, authorised authors, members without grants and an outsider would.
///
/// The handler keeps its own model of what the patients decided (grants, revocations,
/// break-glass, suspensions), updated only from calls that succeeded, and a ghost copy of every
/// record it saw anchored (patient, scope, author, status). After each successful call it reads
/// the events the call emitted and compares each fact with the model: a read the model does not
/// allow, an event naming the wrong patient, a write or batch by an author without an amend grant,
/// a reused id or a status moving backwards is counted as a violation. The invariants in
/// EhrInvariants.t.sol assert that every count stays zero and that the chain's stored state still
/// matches the ghost records.
contract EhrHandler {
    enum Basis {
        None,
        Patient,
        Grant,
        BreakGlass
    }

    struct ModelGrant {
        uint64 scopes;
        uint64 expiresAt;
        IConsentManager.Access access;
        bool revoked;
        bytes5 purposeTag; // the first five bytes of keccak256(purpose)
        uint40 decidedAt; // the nonce the grant in force was decided at (0 when none)
    }

    /// A grant the patient signed (relayed at once, or held by a relayer for later).
    struct SignedGrant {
        address patient;
        address grantee;
        uint64 scopes;
        bool mayAmend;
        string purpose;
        uint64 grantEndsAt;
        uint256 nonce;
        uint64 validUntil;
        bytes signature;
    }

    /// A revocation the patient signed and a relayer holds.
    struct SignedRevocation {
        address patient;
        address grantee;
        uint256 nonce;
        uint64 validUntil;
        bytes signature;
    }

    struct ModelBreakGlass {
        uint64 requestedAt;
        uint64 expiresAt;
    }

    struct GhostRecord {
        address patient;
        uint64 scope;
        address author;
        bytes32 salt; // the salt (single) or the batch key (batched)
        IRecordRegistry.Status status;
        bool batched;
        bool materialized; // a batched record that got a stored slot (amended or tombstoned)
        uint32 leaf; // index into `leaves` for batched records
        address tombstonedBy;
    }

    struct ReadFact {
        bytes32 recordId;
        address patient; // as the event named it
        address reader;
        bool emergency;
        Basis basis; // what the model says allowed it (None: nothing did)
    }

    uint256 public constant ACTORS = 9;
    uint256 public constant MAX_RECORDS = 96;
    uint256 public constant MAX_READ_FACTS = 64;
    uint64 public constant ALL_SCOPES = 15;
    uint256 public constant MAX_HELD = 8;
    /// The scope bits a wallet shows by name (ehr_client/chain/eip712.py CATEGORY_FIELDS).
    uint64 public constant NAMED_SCOPES = 0xBFFF;
    /// What the patient's wallet signs, as ehr_client/chain/eip712.py encodes the types (written
    /// out here, not read from the contract, so a contract typehash that drifts fails the run).
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(address patient,address grantee,Categories categories,bool mayAmend,string purpose,uint64 grantEndsAt,uint256 nonce,uint64 signatureValidUntil)"
        "Categories(bool demographics,bool lab,bool vitals,bool conditions,bool medications,bool procedures,bool encounters,bool imaging,bool genomics,bool mentalHealth,bool documents,bool immunizations,bool carePlans,bool socialHistory,bool other)"
    );
    bytes32 public constant CATEGORIES_TYPEHASH = keccak256(
        "Categories(bool demographics,bool lab,bool vitals,bool conditions,bool medications,bool procedures,bool encounters,bool imaging,bool genomics,bool mentalHealth,bool documents,bool immunizations,bool carePlans,bool socialHistory,bool other)"
    );
    bytes32 public constant REVOKE_TYPEHASH =
        keccak256("Revoke(address patient,address grantee,uint256 nonce,uint64 signatureValidUntil)");
    /// `signedAt` of a decision the patient sent as their own transaction.
    uint256 private constant UNSIGNED = type(uint256).max;

    Vm private constant vm = VM;

    Consortium public immutable consortium;
    RecordRegistry public immutable registry;
    ConsentManager public immutable consent;

    /// 0..2 patients, 3..4 providers, 5 lab, 6 insurer, 7 auditor (members without write rights),
    /// 8 an outsider (the attacker). Anyone may register as a patient.
    address[ACTORS] public actors;
    uint256[ACTORS] private _keys;
    address[3] public governors;

    // ---- the model of what patients and governors decided (successful calls only) ----
    mapping(address => IConsortium.Role) public modelRole;
    mapping(address => bool) public modelSuspended;
    mapping(address => bool) public modelRegistered;
    mapping(address => mapping(address => ModelGrant)) public modelGrant;
    mapping(address => mapping(address => ModelBreakGlass)) public modelBreakGlass;
    /// The nonce the pair's next signature must carry, as the patient's decisions moved it.
    mapping(address => mapping(address => uint256)) public modelNonce;
    /// Grants signed at a nonce below this were revoked (by a relayed signed revocation or the
    /// patient's own revoke) and must never take effect.
    mapping(address => mapping(address => uint256)) public revokedBelow;
    /// Signatures a relayer holds and submits later, in any order.
    SignedGrant[] internal _heldGrants;
    SignedRevocation[] internal _heldRevocations;

    // ---- ghost records ----
    mapping(bytes32 => GhostRecord) public ghost;
    mapping(bytes32 => bool) public seen;
    mapping(bytes32 => bool) public seenBatch;
    bytes32[] public recordIds;
    IRecordRegistry.BatchedRecord[] internal _leaves;
    IRecordRegistry.BatchedRecord[] internal _pending;
    ReadFact[] internal _reads;

    // ---- context of the call being made ----
    bytes32 private _salt;
    bool private _forged;
    address private _lastBreakGlassPatient;
    address private _lastBreakGlassRequester;

    // ---- violations, each counted when a successful call contradicts the model ----
    uint256 public readsUncovered;
    uint256 public readsRevoked;
    uint256 public readsExpired;
    uint256 public readsOfErased;
    uint256 public readsWrongPatient;
    uint256 public readsUnknownRecord;
    uint256 public readsWrongReader;
    uint256 public identityChanged;
    uint256 public illegalTransitions;
    uint256 public tombstonesByNonPatient;
    uint256 public idsReused;
    uint256 public unauthorisedWrites;
    uint256 public unauthorisedBatches;
    uint256 public forgedAccepted;
    uint256 public badGrants;
    uint256 public revocationsVoided;
    uint256 public badBreakGlass;
    uint256 public badGovernance;
    string public firstViolation;

    // ---- coverage: successful calls by kind ----
    uint256 public nReads;
    uint256 public nEmergencyReads;
    uint256 public nRecords;
    uint256 public nBatches;
    uint256 public nAmends;
    uint256 public nTombstones;
    uint256 public nGrants;
    uint256 public nSignedGrants;
    uint256 public nRevokes;
    uint256 public nSignedRevokes;
    uint256 public nHeldRelayed;
    /// Signed revocations that ended a grant relayed after the revocation was signed.
    uint256 public nRevocationRaces;
    uint256 public nBreakGlass;
    uint256 public nSuspensions;

    constructor() {
        for (uint256 i = 0; i < 3; ++i) {
            governors[i] = vm.addr(0x60_0000 + i);
        }
        address[] memory govs = new address[](3);
        (govs[0], govs[1], govs[2]) = (governors[0], governors[1], governors[2]);
        consortium = new Consortium(govs, 2);
        registry = new RecordRegistry(consortium, "EHR Consent (forge)");
        consent = ConsentManager(registry.consentManager());
        vm.warp(1_750_000_000);
        for (uint256 i = 0; i < ACTORS; ++i) {
            _keys[i] = 0xA11CE_000 + i;
            actors[i] = vm.addr(_keys[i]);
        }
        _admit(actors[3], IConsortium.Role.Provider);
        _admit(actors[4], IConsortium.Role.Provider);
        _admit(actors[5], IConsortium.Role.Lab);
        _admit(actors[6], IConsortium.Role.Insurer);
        _admit(actors[7], IConsortium.Role.Auditor);
        for (uint256 i = 0; i < 3; ++i) {
            vm.prank(actors[i]);
            registry.registerPatient();
            modelRegistered[actors[i]] = true;
        }
    }

    // =====================================================================================
    // Actions (the fuzzer's targets)
    // =====================================================================================

    function registerPatient(uint256 actorSeed) external {
        address caller = _actor(actorSeed);
        vm.prank(caller);
        registry.registerPatient();
        modelRegistered[caller] = true;
    }

    /// mode 0: a random author; 1: the patient; 2: an actor the model says holds an amend grant.
    function addRecord(uint256 authorSeed, uint256 patientSeed, uint8 saltSeed, uint8 scopeSeed, uint8 mode)
        external
    {
        if (recordIds.length >= MAX_RECORDS) return;
        address patient = _actor(patientSeed);
        address author = _author(mode, authorSeed, patient);
        uint64 scope = scopeSeed % 5 == 4 ? 0 : uint64(1) << (scopeSeed % 4);
        _salt = bytes32(uint256(saltSeed % 16));
        bytes32 contentHash = keccak256(abi.encode("content", saltSeed, scopeSeed));
        vm.recordLogs();
        vm.prank(author);
        try registry.addRecord(_salt, patient, contentHash, scope, abi.encodePacked(contentHash)) returns (bytes32 id) {
            _scan(author);
            if (ghost[id].author != author) {
                identityChanged++;
                _violate("addRecord returned an id the handler did not see anchored by the caller");
            }
        } catch {
            vm.getRecordedLogs();
        }
    }

    function amendRecord(uint256 authorSeed, uint256 recordSeed, uint8 saltSeed, uint8 mode, bool batchedPath)
        external
    {
        if (recordIds.length == 0 || recordIds.length >= MAX_RECORDS) return;
        bytes32 previousId = recordIds[recordSeed % recordIds.length];
        GhostRecord storage g = ghost[previousId];
        address author = _author(mode, authorSeed, g.patient);
        _salt = bytes32(uint256(saltSeed % 16));
        bytes32 contentHash = keccak256(abi.encode("amended", saltSeed, previousId));
        bytes memory cid = abi.encodePacked(contentHash);
        vm.recordLogs();
        if (g.batched && (batchedPath || !g.materialized)) {
            IRecordRegistry.BatchedRecord memory leaf = _leaves[g.leaf];
            vm.prank(author);
            try registry.amendBatchedRecord(leaf, _salt, contentHash, cid) {
                _scan(author);
            } catch {
                vm.getRecordedLogs();
            }
        } else {
            vm.prank(author);
            try registry.amendRecord(previousId, _salt, contentHash, cid) {
                _scan(author);
            } catch {
                vm.getRecordedLogs();
            }
        }
    }

    /// mode % 4 == 0: the record's own patient erases it (allowed); else a random actor tries (mostly
    /// refused), so that records stay readable long enough for reads to be exercised.
    function tombstone(uint256 callerSeed, uint256 recordSeed, uint8 mode, bool batchedPath) external {
        if (recordIds.length == 0) return;
        bytes32 id = recordIds[recordSeed % recordIds.length];
        GhostRecord storage g = ghost[id];
        address caller = mode % 4 == 0 ? g.patient : _actor(callerSeed);
        vm.recordLogs();
        if (g.batched && (batchedPath || !g.materialized)) {
            IRecordRegistry.BatchedRecord memory leaf = _leaves[g.leaf];
            vm.prank(caller);
            try registry.tombstoneBatchedRecord(leaf) {
                _scan(caller);
            } catch {
                vm.getRecordedLogs();
            }
        } else {
            vm.prank(caller);
            try registry.tombstone(id) {
                _scan(caller);
            } catch {
                vm.getRecordedLogs();
            }
        }
    }

    /// A batch of 1 to 4 leaves under a positional Merkle tree built here as the contract checks it.
    /// keySeed is small so authors reuse batch keys (which must be refused).
    function anchorBatch(
        uint256 authorSeed,
        uint256 patientSeed,
        uint8 keySeed,
        uint8 countSeed,
        uint32 scopeSeeds,
        bool extraScope,
        uint8 mode
    ) external {
        uint256 count = 1 + countSeed % 4;
        if (recordIds.length + count > MAX_RECORDS) return;
        address patient = _actor(patientSeed);
        address author = _author(mode, authorSeed, patient);
        bytes32 batchKey = bytes32(uint256(keySeed % 4));
        uint64 scopes = extraScope ? uint64(1) << (scopeSeeds % 4) : 0;
        bytes32[] memory leafHashes = new bytes32[](count);
        delete _pending;
        for (uint256 i = 0; i < count; ++i) {
            IRecordRegistry.BatchedRecord storage p = _pending.push();
            p.author = author;
            p.batchKey = batchKey;
            p.patient = patient;
            p.leafCount = uint32(count);
            p.index = uint32(i);
            p.scope = uint64(1) << ((scopeSeeds >> (8 * i)) % 4);
            p.contentHash = keccak256(abi.encode("leaf", author, batchKey, i, scopeSeeds));
            p.cidHash = keccak256(abi.encodePacked(p.contentHash));
            scopes |= p.scope;
            leafHashes[i] = leafHash(uint32(i), p.scope, p.contentHash, p.cidHash);
        }
        (bytes32 root, bytes32[][] memory proofs) = merkle(leafHashes);
        for (uint256 i = 0; i < count; ++i) {
            _pending[i].root = root;
            _pending[i].scopes = scopes;
            _pending[i].proof = proofs[i];
        }
        bytes32 manifestHash = keccak256(abi.encode("manifest", root));
        vm.recordLogs();
        vm.prank(author);
        try registry.anchorBatch(batchKey, patient, scopes, root, uint32(count), manifestHash, abi.encodePacked(manifestHash))
        {
            _scan(author);
        } catch {
            vm.getRecordedLogs();
        }
    }

    /// A reader asks for a record. mode 0: a random actor; 1: the patient; 2: an actor the model says
    /// holds or held a grant from the patient (including revoked and expired ones); 3: the provider
    /// that last opened break-glass, on a record of that patient (confirmed or not, expired or not).
    function requestAccess(uint256 readerSeed, uint256 recordSeed, uint8 mode, bool batchedPath) external {
        if (recordIds.length == 0) return;
        bytes32 id = recordIds[recordSeed % recordIds.length];
        if (mode % 4 == 3 && _lastBreakGlassRequester != address(0)) id = _recordOf(_lastBreakGlassPatient, recordSeed, id);
        GhostRecord storage g = ghost[id];
        address reader = _reader(mode, readerSeed, g.patient);
        vm.recordLogs();
        if (g.batched && (batchedPath || !g.materialized)) {
            IRecordRegistry.BatchedRecord memory leaf = _leaves[g.leaf];
            vm.prank(reader);
            try consent.requestBatchedAccess(leaf) {
                _scan(reader);
            } catch {
                vm.getRecordedLogs();
            }
        } else {
            vm.prank(reader);
            try consent.requestAccess(id) {
                _scan(reader);
            } catch {
                vm.getRecordedLogs();
            }
        }
    }

    /// An attacker alters one field of a real batched record's proof and reads, amends or erases
    /// with it. Every such call must be refused.
    function forgeBatched(uint256 callerSeed, uint256 leafSeed, uint8 mutation, uint8 action) external {
        if (_leaves.length == 0) return;
        IRecordRegistry.BatchedRecord memory leaf = _leaves[leafSeed % _leaves.length];
        address caller = _actor(callerSeed);
        uint8 m = mutation % 8;
        if (m == 0) leaf.patient = caller != leaf.patient ? caller : address(uint160(caller) + 1);
        else if (m == 1) leaf.scope = leaf.scope == 8 ? 1 : leaf.scope << 1;
        else if (m == 2) leaf.index = uint32((leaf.index + 1) % (leaf.leafCount + 1));
        else if (m == 3) leaf.scopes = leaf.scopes | (leaf.scope == 8 ? 1 : leaf.scope << 1) | 16;
        else if (m == 4) leaf.author = caller != leaf.author ? caller : address(uint160(caller) + 1);
        else if (m == 5) leaf.contentHash = keccak256(abi.encode(leaf.contentHash));
        else if (m == 6) leaf.leafCount = leaf.leafCount + 1;
        else if (leaf.proof.length > 0) leaf.proof[0] = keccak256(abi.encode(leaf.proof[0]));
        else leaf.cidHash = keccak256(abi.encode(leaf.cidHash));
        _forged = true;
        _salt = bytes32(uint256(mutation));
        vm.recordLogs();
        vm.prank(caller);
        bool ok;
        if (action % 3 == 0) {
            try consent.requestBatchedAccess(leaf) {
                ok = true;
            } catch {}
        } else if (action % 3 == 1) {
            try registry.tombstoneBatchedRecord(leaf) {
                ok = true;
            } catch {}
        } else {
            try registry.amendBatchedRecord(leaf, _salt, keccak256("forged"), hex"01") {
                ok = true;
            } catch {}
        }
        if (ok) {
            forgedAccepted++;
            _violate("a batched record with an altered proof was accepted");
            _scan(caller);
        } else {
            vm.getRecordedLogs();
        }
        _forged = false;
    }

    function grant(uint256 patientSeed, uint256 granteeSeed, uint8 scopeSeed, uint8 accessSeed, uint32 duration)
        external
    {
        address patient = _actor(patientSeed);
        address grantee = _grantee(granteeSeed);
        (uint64 scopes, IConsentManager.Access access, uint64 expiresAt) = _terms(scopeSeed, accessSeed, duration);
        string memory purpose = _purpose(accessSeed / 3);
        vm.prank(patient);
        try consent.grant(grantee, scopes, access, expiresAt, purpose) {
            _granted(patient, grantee, scopes, access, expiresAt, bytes5(keccak256(bytes(purpose))), UNSIGNED);
        } catch {}
    }

    /// A relayer submits a patient's signed grant. signerSeed % 8 == 0: someone else signed it;
    /// == 1: the signature's validity passed. Both must be refused. == 2 or 3: the relayer holds
    /// the genuine signature and submits it later (relayHeld). Terms that cannot be signed as access
    /// None carry a scope bit no category names instead, which must be refused too.
    /// replay: submit it a second time.
    function grantBySig(
        uint256 patientSeed,
        uint256 granteeSeed,
        uint8 scopeSeed,
        uint8 accessSeed,
        uint32 duration,
        uint8 signerSeed,
        bool replay
    ) external {
        SignedGrant memory g;
        uint256 p = patientSeed % ACTORS;
        g.patient = actors[p];
        g.grantee = _grantee(granteeSeed);
        IConsentManager.Access access;
        (g.scopes, access, g.grantEndsAt) = _terms(scopeSeed, accessSeed, duration);
        if (access == IConsentManager.Access.None) g.scopes |= uint64(1) << 14;
        g.mayAmend = access == IConsentManager.Access.Amend;
        g.purpose = _purpose(accessSeed / 3);
        g.nonce = consent.nonces(g.patient, g.grantee);
        bool expired = signerSeed % 8 == 1;
        g.validUntil = uint64(expired ? block.timestamp - 1 : block.timestamp + 1 hours);
        uint256 signer = signerSeed % 8 == 0 ? (p + 1 + signerSeed % (ACTORS - 1)) % ACTORS : p;
        if (signerSeed % 8 == 2 || signerSeed % 8 == 3) {
            // Held for a day; the grant it carries lasts a day longer than the random terms, so that
            // it can still take effect when it is relayed (the random terms are kept otherwise).
            g.validUntil = uint64(block.timestamp + 1 days);
            if (g.grantEndsAt > block.timestamp) g.grantEndsAt += 1 days;
            g.signature = _sign(p, _grantStructHash(g));
            _hold(g, signerSeed);
            return;
        }
        g.signature = _sign(signer, _grantStructHash(g));
        bool genuine = signer == p && !expired;
        vm.prank(actors[(p + 3) % ACTORS]);
        if (!_relayGrant(g, genuine)) return;
        if (replay && _relay(g)) {
            badGrants++;
            _violate("a signed grant was accepted twice");
        }
    }

    /// The patient signs a revocation at the pair's current nonce and a relayer holds it.
    /// ofHeld: for the pair of a grant signature a relayer already holds (so the two race).
    function signRevocation(uint256 heldSeed, uint256 patientSeed, uint256 granteeSeed, bool ofHeld) external {
        SignedRevocation memory r;
        if (ofHeld && _heldGrants.length > 0) {
            SignedGrant storage h = _heldGrants[heldSeed % _heldGrants.length];
            (r.patient, r.grantee) = (h.patient, h.grantee);
        } else {
            r.patient = _actor(patientSeed);
            r.grantee = _holder(granteeSeed, r.patient);
        }
        r.nonce = consent.nonces(r.patient, r.grantee);
        r.validUntil = uint64(block.timestamp + 1 days);
        r.signature = _sign(_index(r.patient), _revokeStructHash(r));
        if (_heldRevocations.length < MAX_HELD) _heldRevocations.push(r);
        else _heldRevocations[heldSeed % MAX_HELD] = r;
    }

    /// A relayer submits a signature it held, after whatever happened since it was signed.
    /// mode % 3 == 0: a held grant; 1: a held revocation; 2: a held grant, then a held revocation
    /// of the same pair if there is one (the race of issue 13: the revocation must still win).
    function relayHeld(uint256 heldSeed, uint8 mode) external {
        if (mode % 3 == 1 || _heldGrants.length == 0) {
            if (_heldRevocations.length > 0) _relayHeldRevocation(heldSeed % _heldRevocations.length);
            return;
        }
        uint256 i = heldSeed % _heldGrants.length;
        SignedGrant memory g = _heldGrants[i];
        _heldGrants[i] = _heldGrants[_heldGrants.length - 1];
        _heldGrants.pop();
        vm.prank(actors[8]);
        if (_relayGrant(g, true)) nHeldRelayed++;
        if (mode % 3 != 2) return;
        for (uint256 j = 0; j < _heldRevocations.length; ++j) {
            SignedRevocation storage r = _heldRevocations[j];
            if (r.patient == g.patient && r.grantee == g.grantee) {
                _relayHeldRevocation(j);
                return;
            }
        }
    }

    function _relayHeldRevocation(uint256 i) private {
        SignedRevocation memory r = _heldRevocations[i];
        _heldRevocations[i] = _heldRevocations[_heldRevocations.length - 1];
        _heldRevocations.pop();
        if (_relayRevocation(r, true)) nHeldRelayed++;
    }

    /// Relays a signed grant (the caller pranks the relayer) and checks the outcome with the model.
    function _relayGrant(SignedGrant memory g, bool genuine) private returns (bool) {
        if (!_relay(g)) return false;
        if (!genuine || block.timestamp > g.validUntil) {
            badGrants++;
            _violate("a grant signed by someone else, or after its deadline, was accepted");
        }
        if (g.scopes & ~NAMED_SCOPES != 0) {
            badGrants++;
            _violate("a signed grant with a scope bit the wallet could not show was accepted");
        }
        nSignedGrants++;
        IConsentManager.Access access = g.mayAmend ? IConsentManager.Access.Amend : IConsentManager.Access.Read;
        _granted(g.patient, g.grantee, g.scopes, access, g.grantEndsAt, bytes5(keccak256(bytes(g.purpose))), g.nonce);
        return true;
    }

    function _hold(SignedGrant memory g, uint256 seed) private {
        if (_heldGrants.length < MAX_HELD) _heldGrants.push(g);
        else _heldGrants[seed % MAX_HELD] = g;
    }

    /// hashStruct(Categories): one bool per named category, in bit order (bit 14 has no name).
    function _categoriesHash(uint64 scopes) private pure returns (bytes32) {
        bytes memory encoded = abi.encode(CATEGORIES_TYPEHASH);
        for (uint256 bit = 0; bit < 16; ++bit) {
            if (bit != 14) encoded = bytes.concat(encoded, abi.encode((scopes >> bit) & 1 == 1));
        }
        return keccak256(encoded);
    }

    function _grantStructHash(SignedGrant memory g) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                g.patient,
                g.grantee,
                _categoriesHash(g.scopes),
                g.mayAmend,
                keccak256(bytes(g.purpose)),
                g.grantEndsAt,
                g.nonce,
                g.validUntil
            )
        );
    }

    function _revokeStructHash(SignedRevocation memory r) private pure returns (bytes32) {
        return keccak256(abi.encode(REVOKE_TYPEHASH, r.patient, r.grantee, r.nonce, r.validUntil));
    }

    function _relay(SignedGrant memory g) private returns (bool) {
        try consent.grantBySig(
            g.patient, g.grantee, g.scopes, g.mayAmend, g.purpose, g.grantEndsAt, g.validUntil, g.signature
        ) {
            return true;
        } catch {
            return false;
        }
    }

    /// signed: the patient signs a revocation at the current nonce (wrongSigner: someone else
    /// does) and an outsider relays it at once; else the patient revokes directly.
    function revoke(uint256 patientSeed, uint256 granteeSeed, bool signed, bool wrongSigner) external {
        uint256 p = patientSeed % ACTORS;
        address patient = actors[p];
        address grantee = _holder(granteeSeed, patient);
        if (signed) {
            SignedRevocation memory r;
            (r.patient, r.grantee) = (patient, grantee);
            r.nonce = consent.nonces(patient, grantee);
            r.validUntil = uint64(block.timestamp + 1 hours);
            r.signature = _sign(wrongSigner ? (p + 1) % ACTORS : p, _revokeStructHash(r));
            _relayRevocation(r, !wrongSigner);
        } else {
            bool had = modelGrant[patient][grantee].access != IConsentManager.Access.None;
            vm.prank(patient);
            try consent.revoke(grantee) {
                _revoked(patient, grantee, had, UNSIGNED);
            } catch {}
        }
    }

    /// Relays a signed revocation and checks the outcome against the rule: a revocation signed at
    /// nonce n ends a grant decided at n or earlier (whichever was relayed first) and, with no
    /// grant in force, voids the grants signed at n; a grant decided later stands.
    function _relayRevocation(SignedRevocation memory r, bool genuine) private returns (bool ok) {
        ModelGrant storage m = modelGrant[r.patient][r.grantee];
        bool had = m.access != IConsentManager.Access.None;
        bool due = genuine && block.timestamp <= r.validUntil
            && (had ? m.decidedAt <= r.nonce : r.nonce == modelNonce[r.patient][r.grantee]);
        vm.prank(actors[8]);
        try consent.revokeBySig(r.patient, r.grantee, r.nonce, r.validUntil, r.signature) {
            ok = true;
        } catch {}
        if (ok && !due) {
            badGrants++;
            _violate("a signed revocation by someone else, past its validity or older than the grant was accepted");
        }
        if (!ok && due) {
            revocationsVoided++;
            _violate("a revocation the patient signed was refused though no later decision superseded it");
        }
        if (ok) {
            nSignedRevokes++;
            if (had && r.nonce < modelNonce[r.patient][r.grantee]) nRevocationRaces++;
            _revoked(r.patient, r.grantee, had, r.nonce);
        }
    }

    function cancelSignatures(uint256 patientSeed, uint256 granteeSeed) external {
        address patient = _actor(patientSeed);
        address grantee = _actor(granteeSeed);
        vm.prank(patient);
        consent.cancelSignatures(grantee);
        uint256 nonce = ++modelNonce[patient][grantee];
        ModelGrant storage m = modelGrant[patient][grantee];
        // The grant in force now counts as decided at the new nonce.
        if (m.access != IConsentManager.Access.None) m.decidedAt = uint40(nonce);
    }

    /// callerSeed even: one of the two providers; odd: anyone (who must be refused unless a provider).
    function openBreakGlass(uint256 callerSeed, uint256 patientSeed, uint8 reason) external {
        address caller = callerSeed % 2 == 0 ? actors[3 + (callerSeed / 2) % 2] : _actor(callerSeed / 2);
        address patient = actors[patientSeed % 3];
        reason = reason % 4;
        vm.prank(caller);
        try consent.openBreakGlass(patient, reason) {
            if (!_activeProvider(caller) || reason == 0) {
                badBreakGlass++;
                _violate("break-glass opened by a non-provider or without a reason");
            }
            modelBreakGlass[patient][caller] = ModelBreakGlass(uint64(block.timestamp), 0);
            (_lastBreakGlassPatient, _lastBreakGlassRequester) = (patient, caller);
        } catch {}
    }

    /// followUp: the other provider confirms the last request opened; else random actors try.
    function confirmBreakGlass(uint256 callerSeed, uint256 patientSeed, uint256 requesterSeed, bool followUp)
        external
    {
        address caller = _actor(callerSeed);
        address patient = _actor(patientSeed);
        address requester = _actor(requesterSeed);
        if (followUp && _lastBreakGlassRequester != address(0)) {
            (patient, requester) = (_lastBreakGlassPatient, _lastBreakGlassRequester);
            caller = requester == actors[3] ? actors[4] : actors[3];
        }
        ModelBreakGlass storage bg = modelBreakGlass[patient][requester];
        bool pending = bg.requestedAt != 0 && bg.expiresAt == 0
            && block.timestamp <= bg.requestedAt + consent.BREAK_GLASS_CONFIRM_WINDOW();
        vm.prank(caller);
        try consent.confirmBreakGlass(patient, requester) {
            if (!_activeProvider(caller) || caller == requester || !pending) {
                badBreakGlass++;
                _violate("break-glass confirmed without a second provider or a pending request");
            }
            bg.expiresAt = uint64(block.timestamp) + consent.BREAK_GLASS_WINDOW();
            nBreakGlass++;
        } catch {}
    }

    /// A governor (or, when byOutsider, the attacker) suspends a member.
    function suspend(uint256 governorSeed, uint256 targetSeed, bool byOutsider) external {
        address caller = byOutsider ? actors[8] : governors[governorSeed % 3];
        address target = _actor(targetSeed);
        vm.prank(caller);
        try consortium.suspend(target) {
            if (byOutsider || modelRole[target] == IConsortium.Role.None || modelSuspended[target]) {
                badGovernance++;
                _violate("suspension by a non-governor or of a non-member");
            }
            modelSuspended[target] = true;
            nSuspensions++;
        } catch {}
    }

    /// Two of three governors reinstate a member: a suspended one when there is one (else anyone,
    /// which must be refused).
    function reinstate(uint256 targetSeed, uint64 window) external {
        address target = _actor(targetSeed);
        for (uint256 i = 0; i < ACTORS; ++i) {
            address a = actors[(targetSeed % ACTORS + i) % ACTORS];
            if (modelSuspended[a]) {
                target = a;
                break;
            }
        }
        vm.prank(governors[0]);
        try consortium.propose(IConsortium.Action.Reinstate, target, 0, 1 + window % 1 days) returns (uint256 id) {
            vm.prank(governors[1]);
            consortium.approve(id);
            vm.prank(governors[1]);
            consortium.execute(id);
            if (!modelSuspended[target]) {
                badGovernance++;
                _violate("reinstated an active member");
            }
            modelSuspended[target] = false;
        } catch {}
    }

    /// Time passes, so grants and break-glass windows expire.
    function warp(uint32 secondsSeed) external {
        vm.warp(block.timestamp + 1 + secondsSeed % 2 hours);
    }

    // =====================================================================================
    // Merkle trees as RecordRegistry checks them
    // =====================================================================================

    function leafHash(uint32 index, uint64 scope, bytes32 contentHash, bytes32 cidHash) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(index, scope, contentHash, cidHash))));
    }

    /// The root and every leaf's path of a positional tree padded with zero leaves.
    function merkle(bytes32[] memory leafHashes) public pure returns (bytes32 root, bytes32[][] memory proofs) {
        uint256 n = leafHashes.length;
        uint256 depth;
        while ((uint256(1) << depth) < n) ++depth;
        bytes32[] memory layer = new bytes32[](uint256(1) << depth);
        for (uint256 i = 0; i < n; ++i) {
            layer[i] = leafHashes[i];
        }
        proofs = new bytes32[][](n);
        for (uint256 i = 0; i < n; ++i) {
            proofs[i] = new bytes32[](depth);
        }
        for (uint256 level = 0; level < depth; ++level) {
            for (uint256 i = 0; i < n; ++i) {
                proofs[i][level] = layer[(i >> level) ^ 1];
            }
            bytes32[] memory next = new bytes32[](layer.length / 2);
            for (uint256 j = 0; j < next.length; ++j) {
                next[j] = keccak256(abi.encode(layer[2 * j], layer[2 * j + 1]));
            }
            layer = next;
        }
        root = layer[0];
    }

    // =====================================================================================
    // Views the invariants use
    // =====================================================================================

    function recordCount() external view returns (uint256) {
        return recordIds.length;
    }

    function readFactCount() external view returns (uint256) {
        return _reads.length;
    }

    function readFact(uint256 i) external view returns (ReadFact memory) {
        return _reads[i];
    }

    function leafAt(uint256 i) external view returns (IRecordRegistry.BatchedRecord memory) {
        return _leaves[i];
    }

    /// Records whose stored (or proven) patient, scope or status differ from the ghost.
    function recordMismatches() external view returns (uint256 bad) {
        for (uint256 i = 0; i < recordIds.length; ++i) {
            bytes32 id = recordIds[i];
            GhostRecord storage g = ghost[id];
            IRecordRegistry.Record memory state;
            if (g.batched) {
                try registry.resolveBatchedRecord(_leaves[g.leaf]) returns (bytes32, IRecordRegistry.Record memory s) {
                    state = s;
                } catch {
                    ++bad;
                    continue;
                }
            } else {
                try registry.getRecord(id) returns (IRecordRegistry.Record memory s) {
                    state = s;
                } catch {
                    ++bad;
                    continue;
                }
            }
            if (state.patient != g.patient || state.scope != g.scope || state.status != g.status) ++bad;
        }
    }

    /// Records whose id is not the one derived from their author (and salt, or batch key and
    /// position), or, for batched records, not the id their proof resolves to now; and records
    /// for which `anchoredNear` names no blocks, or another batch than their id (none for a single
    /// record), whether or not they were amended or erased.
    function idMismatches() external view returns (uint256 bad) {
        for (uint256 i = 0; i < recordIds.length; ++i) {
            bytes32 id = recordIds[i];
            GhostRecord storage g = ghost[id];
            (,, uint256 toBlock, bytes32 namedBatch) = registry.anchoredNear(id);
            if (toBlock == 0) ++bad;
            if (!g.batched) {
                if (keccak256(abi.encode(uint8(1), g.author, g.salt)) != id || namedBatch != bytes32(0)) ++bad;
                continue;
            }
            IRecordRegistry.BatchedRecord memory l = _leaves[g.leaf];
            if (l.author != g.author || _batchedIdOf(l.author, l.batchKey, l.index) != id) ++bad;
            if (namedBatch != _batchIdOf(l.author, l.batchKey)) ++bad;
            try registry.resolveBatchedRecord(l) returns (bytes32 resolved, IRecordRegistry.Record memory) {
                if (resolved != id) ++bad;
            } catch {
                ++bad;
            }
        }
    }

    /// Tombstoned ghost records whose tombstone did not come from their patient.
    function tombstonesNotByPatient() external view returns (uint256 bad) {
        for (uint256 i = 0; i < recordIds.length; ++i) {
            GhostRecord storage g = ghost[recordIds[i]];
            if (g.status == IRecordRegistry.Status.Tombstoned && g.tombstonedBy != g.patient) ++bad;
        }
    }

    /// Pairs whose stored grant differs from what the patient decided, and revoked or expired
    /// grants the chain would still honour for a read (outside break-glass).
    function grantMismatches() external view returns (uint256 bad) {
        for (uint256 p = 0; p < ACTORS; ++p) {
            for (uint256 r = 0; r < ACTORS; ++r) {
                if (p == r) continue;
                address patient = actors[p];
                address reader = actors[r];
                ModelGrant storage m = modelGrant[patient][reader];
                IConsentManager.Grant memory s = consent.getGrant(patient, reader);
                if (s.scopes != m.scopes || s.expiresAt != m.expiresAt || s.access != m.access) ++bad;
                if (s.purposeTag != m.purposeTag || s.grantNonce != m.decidedAt) ++bad;
                if (s.nonce != modelNonce[patient][reader]) ++bad;
                bool dead = m.revoked || (m.access != IConsentManager.Access.None && m.expiresAt <= block.timestamp);
                if (dead && !_breakGlassActive(patient, reader)) {
                    for (uint64 bit = 1; bit <= 8; bit <<= 1) {
                        if (consent.canRead(patient, reader, bit)) ++bad;
                    }
                }
            }
        }
    }

    // =====================================================================================
    // Checking what a successful call emitted against the model
    // =====================================================================================

    function _scan(address caller) private {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            Vm.Log memory l = logs[i];
            bytes32 topic = l.topics[0];
            if (l.emitter == address(consent)) {
                if (topic == IConsentManager.AccessRequested.selector) _onRead(l, caller);
            } else if (l.emitter == address(registry)) {
                if (topic == IRecordRegistry.RecordAdded.selector) _onAdded(l, caller);
                else if (topic == IRecordRegistry.RecordAmended.selector) _onAmended(l, caller);
                else if (topic == IRecordRegistry.RecordTombstoned.selector) _onTombstoned(l, caller);
                else if (topic == IRecordRegistry.BatchAnchored.selector) _onBatch(l, caller);
            }
        }
    }

    function _onRead(Vm.Log memory l, address caller) private {
        bytes32 id = l.topics[1];
        address patient = _addr(l.topics[2]);
        address reader = _addr(l.topics[3]);
        bool emergency = abi.decode(l.data, (bool));
        nReads++;
        if (emergency) nEmergencyReads++;
        if (reader != caller) {
            readsWrongReader++;
            _violate("AccessRequested names someone other than the caller as reader");
        }
        if (!seen[id]) {
            readsUnknownRecord++;
            _violate("AccessRequested for a record nobody anchored");
            return;
        }
        GhostRecord storage g = ghost[id];
        if (patient != g.patient) {
            readsWrongPatient++;
            _violate("AccessRequested names someone other than the record's patient");
        }
        if (g.status == IRecordRegistry.Status.Tombstoned) {
            readsOfErased++;
            _violate("a tombstoned record was read");
        }
        Basis basis = _basis(g.patient, reader, g.scope, emergency);
        if (_reads.length < MAX_READ_FACTS) _reads.push(ReadFact(id, patient, reader, emergency, basis));
    }

    /// What in the model allowed `reader` to read; counts a violation when nothing did.
    function _basis(address patient, address reader, uint64 scope, bool emergency) private returns (Basis) {
        if (reader == patient && !emergency) return Basis.Patient;
        if (emergency) {
            if (_breakGlassActive(patient, reader)) return Basis.BreakGlass;
            readsUncovered++;
            _violate("an emergency read without confirmed, unexpired break-glass");
            return Basis.None;
        }
        ModelGrant storage m = modelGrant[patient][reader];
        bool member = modelRole[reader] != IConsortium.Role.None && !modelSuspended[reader];
        if (m.revoked) {
            readsRevoked++;
            _violate("a read on a revoked grant");
        } else if (!member || m.access == IConsentManager.Access.None || (m.scopes & scope) != scope) {
            readsUncovered++;
            _violate("a read without a grant covering the record's scope");
        } else if (m.expiresAt <= block.timestamp) {
            readsExpired++;
            _violate("a read on an expired grant");
        } else {
            return Basis.Grant;
        }
        return Basis.None;
    }

    function _onAdded(Vm.Log memory l, address caller) private {
        bytes32 id = l.topics[1];
        address patient = _addr(l.topics[2]);
        address author = _addr(l.topics[3]);
        (, uint64 scope, bytes32 previousId,) = abi.decode(l.data, (bytes32, uint64, bytes32, bytes));
        if (author != caller || id != keccak256(abi.encode(uint8(1), caller, _salt))) {
            identityChanged++;
            _violate("a record id not derived from its author and salt");
        }
        if (seen[id]) {
            idsReused++;
            _violate("a record id was anchored twice");
            return;
        }
        if (!modelRegistered[patient] || (caller != patient && !_canAmend(patient, caller, scope))) {
            unauthorisedWrites++;
            _violate("a record written without an amend grant covering its scope");
        }
        if (previousId != bytes32(0)) {
            GhostRecord storage previous = ghost[previousId];
            if (!seen[previousId] || previous.patient != patient || previous.scope != scope) {
                identityChanged++;
                _violate("an amendment changed the record's patient or scope");
            }
            _transition(previous, IRecordRegistry.Status.Superseded);
            nAmends++;
        }
        seen[id] = true;
        ghost[id] = GhostRecord({
            patient: patient,
            scope: scope,
            author: author,
            salt: _salt,
            status: IRecordRegistry.Status.Active,
            batched: false,
            materialized: false,
            leaf: 0,
            tombstonedBy: address(0)
        });
        recordIds.push(id);
        nRecords++;
    }

    function _onAmended(Vm.Log memory l, address caller) private {
        if (_addr(l.topics[3]) != caller || !seen[l.topics[1]] || !seen[l.topics[2]]) {
            identityChanged++;
            _violate("RecordAmended names a wrong author or an unknown record");
        }
    }

    function _onTombstoned(Vm.Log memory l, address caller) private {
        bytes32 id = l.topics[1];
        GhostRecord storage g = ghost[id];
        if (!seen[id] || caller != g.patient || _addr(l.topics[2]) != g.patient) {
            tombstonesByNonPatient++;
            _violate("a record was tombstoned by someone other than its patient");
        }
        _transition(g, IRecordRegistry.Status.Tombstoned);
        g.tombstonedBy = caller;
        nTombstones++;
    }

    function _onBatch(Vm.Log memory l, address caller) private {
        bytes32 batchId = l.topics[1];
        address patient = _addr(l.topics[3]);
        (bytes32 batchKey,, uint64 scopes, uint32 leafCount,,) =
            abi.decode(l.data, (bytes32, bytes32, uint64, uint32, bytes32, bytes));
        if (_addr(l.topics[2]) != caller || batchId != _batchIdOf(caller, batchKey)) {
            identityChanged++;
            _violate("a batch id not derived from its author and key");
        }
        if (seenBatch[batchId]) {
            idsReused++;
            _violate("a batch id was anchored twice");
        }
        seenBatch[batchId] = true;
        if (!modelRegistered[patient] || (caller != patient && !_canAmend(patient, caller, scopes))) {
            unauthorisedBatches++;
            _violate("a batch anchored without an amend grant covering its scopes");
        }
        for (uint32 i = 0; i < leafCount; ++i) {
            bytes32 id = _batchedIdOf(caller, batchKey, i);
            if (seen[id]) {
                idsReused++;
                _violate("a batched record id was anchored twice");
                continue;
            }
            seen[id] = true;
            _leaves.push(_pending[i]);
            ghost[id] = GhostRecord({
                patient: patient,
                scope: _pending[i].scope,
                author: caller,
                salt: batchKey,
                status: IRecordRegistry.Status.Active,
                batched: true,
                materialized: false,
                leaf: uint32(_leaves.length - 1),
                tombstonedBy: address(0)
            });
            recordIds.push(id);
        }
        nBatches++;
    }

    /// The model's own reading of the id layout: a batch id is the leading 12 bytes of its hash; a
    /// batched id is that, the index (4 bytes), then the last 16 bytes of the leaf's hash.
    function _batchIdOf(address author, bytes32 batchKey) private pure returns (bytes32) {
        return bytes32(bytes12(keccak256(abi.encode(uint8(3), author, batchKey))));
    }

    function _batchedIdOf(address author, bytes32 batchKey, uint32 i) private pure returns (bytes32) {
        bytes32 leaf = keccak256(abi.encode(uint8(2), author, batchKey, i));
        return _batchIdOf(author, batchKey) | bytes32(uint256(i) << 128) | bytes32(uint256(uint128(uint256(leaf))));
    }

    /// None -> Active -> Superseded or Tombstoned; Superseded -> Tombstoned; Tombstoned is final.
    function _transition(GhostRecord storage g, IRecordRegistry.Status to) private {
        IRecordRegistry.Status from = g.status;
        bool legal = (from == IRecordRegistry.Status.Active && to != IRecordRegistry.Status.Active)
            || (from == IRecordRegistry.Status.Superseded && to == IRecordRegistry.Status.Tombstoned);
        if (!legal) {
            illegalTransitions++;
            _violate("a record status moved backwards or left Tombstoned");
        }
        g.status = to;
        if (g.batched) g.materialized = true;
    }

    // =====================================================================================
    // Model helpers
    // =====================================================================================

    /// `signedAt`: the nonce the patient's signature carried, or UNSIGNED for their own transaction.
    function _granted(
        address patient,
        address grantee,
        uint64 scopes,
        IConsentManager.Access access,
        uint64 expiresAt,
        bytes5 purposeTag,
        uint256 signedAt
    ) private {
        // Membership and role are the grantee's to hold when it acts (the read and amend checks
        // below), not the patient's own grant's: such a grant to a non-member is stored and opens
        // nothing. A relayed signature is taken up only by an active member (a writer, to amend).
        IConsortium.Role role = modelRole[grantee];
        bool member = role != IConsortium.Role.None && !modelSuspended[grantee];
        bool amender = role == IConsortium.Role.Provider || role == IConsortium.Role.Lab;
        if (
            grantee == patient || scopes == 0 || access == IConsentManager.Access.None
                || expiresAt <= block.timestamp
                || (signedAt != UNSIGNED && (!member || (access == IConsentManager.Access.Amend && !amender)))
        ) {
            badGrants++;
            _violate("a grant to the patient, on invalid terms, or relayed to a non-member, was accepted");
        }
        nGrants++;
        ModelGrant storage m = modelGrant[patient][grantee];
        uint256 nonce = modelNonce[patient][grantee];
        uint256 decidedAt;
        if (signedAt == UNSIGNED) {
            // A direct grant always moves the nonce, even with the same terms: it is a decision.
            decidedAt = nonce + 1;
        } else {
            if (signedAt != nonce) {
                badGrants++;
                _violate("a grant signed at a nonce other than the pair's current one was accepted");
            }
            if (signedAt < revokedBelow[patient][grantee]) {
                revocationsVoided++;
                _violate("a grant signed at or before a relayed revocation was accepted");
            }
            decidedAt = signedAt;
        }
        modelNonce[patient][grantee] = nonce + 1;
        modelGrant[patient][grantee] = ModelGrant(scopes, expiresAt, access, false, purposeTag, uint40(decidedAt));
    }

    /// `signedAt` as in {_granted}; `had`: a grant was in force (expired or not) before the call.
    function _revoked(address patient, address grantee, bool had, uint256 signedAt) private {
        uint256 nonce = modelNonce[patient][grantee];
        uint256 revokedAt = signedAt == UNSIGNED ? nonce : signedAt;
        if (revokedAt + 1 > revokedBelow[patient][grantee]) revokedBelow[patient][grantee] = revokedAt + 1;
        // A signed revocation at an older nonce than the current one moves nothing on.
        if (signedAt == UNSIGNED || signedAt == nonce) modelNonce[patient][grantee] = nonce + 1;
        if (!had) {
            // Only a signature at the current nonce may void the grants signed at it.
            if (signedAt != nonce) {
                badGrants++;
                _violate("a revocation of a grant that did not exist was accepted");
            }
            return;
        }
        modelGrant[patient][grantee] = ModelGrant(0, 0, IConsentManager.Access.None, true, bytes5(0), 0);
        nRevokes++;
    }

    function _canAmend(address patient, address author, uint64 scopes) private view returns (bool) {
        ModelGrant storage m = modelGrant[patient][author];
        IConsortium.Role role = modelRole[author];
        return scopes != 0 && m.access == IConsentManager.Access.Amend && m.expiresAt > block.timestamp
            && (m.scopes & scopes) == scopes && !modelSuspended[author]
            && (role == IConsortium.Role.Provider || role == IConsortium.Role.Lab);
    }

    function _activeProvider(address account) private view returns (bool) {
        return modelRole[account] == IConsortium.Role.Provider && !modelSuspended[account];
    }

    function _breakGlassActive(address patient, address reader) private view returns (bool) {
        return _activeProvider(reader) && modelBreakGlass[patient][reader].expiresAt > block.timestamp;
    }

    function _terms(uint8 scopeSeed, uint8 accessSeed, uint32 duration)
        private
        view
        returns (uint64 scopes, IConsentManager.Access access, uint64 expiresAt)
    {
        scopes = uint64(scopeSeed % 16); // 0 must be refused
        access = IConsentManager.Access(accessSeed % 3); // None must be refused
        expiresAt = uint64(block.timestamp + duration % 3 hours); // now must be refused
    }

    function _author(uint8 mode, uint256 seed, address patient) private view returns (address) {
        if (mode % 3 == 1) return patient;
        if (mode % 3 == 2) {
            for (uint256 i = 0; i < ACTORS; ++i) {
                address a = actors[(seed % ACTORS + i) % ACTORS];
                if (modelGrant[patient][a].access == IConsentManager.Access.Amend) return a;
            }
        }
        return _actor(seed);
    }

    /// A record of `patient`, searched from `seed` (or `otherwise`, when the patient has none).
    function _recordOf(address patient, uint256 seed, bytes32 otherwise) private view returns (bytes32) {
        uint256 n = recordIds.length;
        for (uint256 i = 0; i < n; ++i) {
            bytes32 id = recordIds[(seed % n + i) % n];
            if (ghost[id].patient == patient) return id;
        }
        return otherwise;
    }

    /// Someone holding a grant from `patient` (or anyone, when nobody does).
    function _holder(uint256 seed, address patient) private view returns (address) {
        for (uint256 i = 0; i < ACTORS; ++i) {
            address a = actors[(seed % ACTORS + i) % ACTORS];
            if (modelGrant[patient][a].access != IConsentManager.Access.None) return a;
        }
        return _actor(seed);
    }

    function _reader(uint8 mode, uint256 seed, address patient) private view returns (address) {
        if (mode % 4 == 1) return patient;
        if (mode % 4 == 3) {
            if (patient == _lastBreakGlassPatient) return _lastBreakGlassRequester;
            for (uint256 i = 3; i < 5; ++i) {
                if (modelBreakGlass[patient][actors[i]].requestedAt != 0) return actors[i];
            }
        }
        if (mode % 4 == 2) {
            for (uint256 i = 0; i < ACTORS; ++i) {
                address a = actors[(seed % ACTORS + i) % ACTORS];
                ModelGrant storage m = modelGrant[patient][a];
                if (m.revoked || m.access != IConsentManager.Access.None) return a;
            }
        }
        return _actor(seed);
    }

    /// Mostly members (3..7), sometimes the outsider (8), who must be refused.
    function _grantee(uint256 seed) private view returns (address) {
        return actors[3 + seed % 6];
    }

    function _purpose(uint256 seed) private pure returns (string memory) {
        uint256 k = seed % 3;
        return k == 0 ? "treatment" : k == 1 ? "research" : "payment";
    }

    function _index(address actor) private view returns (uint256) {
        for (uint256 i = 0; i < ACTORS; ++i) {
            if (actors[i] == actor) return i;
        }
        revert("not an actor");
    }

    function _actor(uint256 seed) private view returns (address) {
        return actors[seed % ACTORS];
    }

    function _admit(address account, IConsortium.Role role) private {
        vm.prank(governors[0]);
        uint256 id = consortium.propose(IConsortium.Action.Admit, account, uint8(role), 1 days);
        vm.prank(governors[1]);
        consortium.approve(id);
        vm.prank(governors[1]);
        consortium.execute(id);
        modelRole[account] = role;
    }

    function _sign(uint256 signer, bytes32 structHash) private view returns (bytes memory) {
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", consent.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(_keys[signer], digest);
        return abi.encodePacked(r, s, v);
    }

    function _addr(bytes32 topic) private pure returns (address) {
        return address(uint160(uint256(topic)));
    }

    function _violate(string memory what) private {
        if (bytes(firstViolation).length == 0) firstViolation = what;
    }
}
