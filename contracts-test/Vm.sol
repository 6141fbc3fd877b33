// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The few Forge cheatcodes the invariant tests use, declared here rather than taken from
/// npm's forge-std (an old unofficial copy). Forge answers calls to this address itself.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function prank(address sender) external;
    function warp(uint256 timestamp) external;
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory);
    function label(address account, string calldata name) external;
    function store(address target, bytes32 slot, bytes32 value) external;
    function load(address target, bytes32 slot) external view returns (bytes32);
}

/// @dev address(uint160(uint256(keccak256("hevm cheat code"))))
Vm constant VM = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

/// @notice What forge's invariant runner reads from `targetSelectors()`.
struct FuzzSelector {
    address addr;
    bytes4[] selectors;
}

/// @dev Forge prints what is sent to this address (`forge test -vv`; `--json` has it in decoded_logs),
/// as forge-std's console does: address(uint160(uint256(keccak256("console.log")))) truncated.
address constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;

function log(string memory label, uint256 value) view {
    (bool sent,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string,uint256)", label, value));
    sent; // nothing to do when no one listens
}
