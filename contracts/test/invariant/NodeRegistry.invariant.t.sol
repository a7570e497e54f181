// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {NodeRegistry} from "../../NodeRegistry.sol";
import {FuzzSelector, Test, Vm} from "../utils/Test.sol";

/// @dev Drives NodeRegistry with registrations over a small pool of keys (so that taken keys are
/// tried), owner-only changes by random callers, transfers, approvals, revocations and removals.
contract NodeRegistryHandler {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    NodeRegistry public immutable registry;
    address[] public operators;
    bytes32[] public ghostIds; // registered and not removed, in no particular order
    mapping(bytes32 => address) public ghostOwner;
    mapping(bytes32 => bool) public ghostApproved;
    bool public strangerChangedARecord;

    constructor(NodeRegistry registry_, address[] memory operators_) {
        registry = registry_;
        operators = operators_;
    }

    function ghostCount() external view returns (uint256) {
        return ghostIds.length;
    }

    function _key(uint8 seed) private pure returns (bytes memory) {
        return abi.encodePacked("key-", seed % 12);
    }

    function register(uint256 operatorSeed, uint8 keySeed) external {
        address operator = operators[operatorSeed % operators.length];
        bytes memory key = _key(keySeed);
        vm.prank(operator);
        try registry.registerNode(operator, "https://node.example", key, bytes32(0), hex"01") returns (bytes32 id) {
            ghostIds.push(id);
            ghostOwner[id] = operator;
        } catch {}
    }

    /// A random caller changes a random record; it must succeed exactly when the caller owns it.
    function update(uint256 callerSeed, uint8 keySeed, uint8 action) external {
        address caller = operators[callerSeed % operators.length];
        bytes32 id = keccak256(_key(keySeed));
        bool ok;
        vm.prank(caller);
        if (action % 3 == 0) {
            try registry.updateNode(id, caller, "https://moved.example", bytes32(uint256(action)), hex"02") {
                ok = true;
            } catch {}
        } else if (action % 3 == 1) {
            try registry.setNodeEnabled(id, action % 2 == 0) {
                ok = true;
            } catch {}
        } else {
            try registry.heartbeat(id) {
                ok = true;
            } catch {}
        }
        if (ok && ghostOwner[id] != caller) strangerChangedARecord = true;
    }

    function transfer(uint256 callerSeed, uint8 keySeed, uint256 newOwnerSeed) external {
        address caller = operators[callerSeed % operators.length];
        bytes32 id = keccak256(_key(keySeed));
        address newOwner = operators[newOwnerSeed % operators.length];
        vm.prank(caller);
        try registry.transferNodeOwnership(id, newOwner) {
            if (ghostOwner[id] != caller) strangerChangedARecord = true;
            ghostOwner[id] = newOwner;
            ghostApproved[id] = false;
        } catch {}
    }

    function setApproval(uint8 keySeed, bool approved) external {
        bytes32 id = keccak256(_key(keySeed));
        vm.prank(registry.owner());
        if (approved) {
            try registry.approveNode(id) {
                ghostApproved[id] = true;
            } catch {}
        } else {
            try registry.revokeNode(id) {
                ghostApproved[id] = false;
            } catch {}
        }
    }

    function remove(uint8 keySeed) external {
        bytes32 id = keccak256(_key(keySeed));
        vm.prank(registry.owner());
        try registry.removeNode(id) {
            for (uint256 i; i < ghostIds.length; ++i) {
                if (ghostIds[i] == id) {
                    ghostIds[i] = ghostIds[ghostIds.length - 1];
                    ghostIds.pop();
                    break;
                }
            }
            delete ghostOwner[id];
            delete ghostApproved[id];
        } catch {}
    }
}

contract NodeRegistryInvariantTest is Test {
    NodeRegistry private registry;
    NodeRegistryHandler private handler;

    function setUp() public {
        address[] memory operators = new address[](3);
        (operators[0], operators[1], operators[2]) = (address(0x0FE1), address(0x0FE2), address(0x0FE3));
        registry = new NodeRegistry(address(this));
        handler = new NodeRegistryHandler(registry, operators);
        registry.transferOwnership(address(handler));
        vm.prank(address(handler));
        registry.acceptOwnership();

        bytes4[] memory selectors = new bytes4[](5);
        selectors[0] = handler.register.selector;
        selectors[1] = handler.update.selector;
        selectors[2] = handler.transfer.selector;
        selectors[3] = handler.setApproval.selector;
        selectors[4] = handler.remove.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
        targetContract(address(handler));
    }

    /// The enumeration lists exactly the live records, each once, each findable by its id with its
    /// owner and approval as the campaign left them.
    function invariant_enumeration_matches_the_records() public view {
        uint256 count = registry.nodeCount();
        vm.assertEq(count, handler.ghostCount(), "nodeCount");
        NodeRegistry.Node[] memory listed = registry.listNodes(0, count);
        for (uint256 i; i < count; ++i) {
            bytes32 id = registry.nodeIdAt(i);
            vm.assertEq(listed[i].teeId, id);
            NodeRegistry.Node memory node = registry.getNode(id);
            vm.assertEq(node.teeId, id);
            vm.assertEq(node.owner, handler.ghostOwner(id));
            vm.assertEq(node.approved, handler.ghostApproved(id));
            vm.assertEq(keccak256(node.signingPublicKey), id);
            for (uint256 j; j < i; ++j) {
                vm.assertTrue(registry.nodeIdAt(j) != id, "listed twice");
            }
        }
    }

    /// Only a record's owner ever changed it.
    function invariant_only_owners_change_records() public view {
        vm.assertFalse(handler.strangerChangedARecord());
    }
}
