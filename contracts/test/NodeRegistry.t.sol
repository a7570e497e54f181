// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {NodeRegistry} from "../NodeRegistry.sol";
import {Test} from "./utils/Test.sol";

contract NodeRegistryTest is Test {
    event NodeRegistered(
        bytes32 indexed teeId,
        address indexed owner,
        address paymentAddress,
        string endpoint,
        bytes signingPublicKey,
        bytes32 codeMeasurement
    );
    event NodeApproved(bytes32 indexed teeId, address indexed nodeOwner);
    event NodeRevoked(bytes32 indexed teeId, address indexed nodeOwner);
    event NodeRemoved(bytes32 indexed teeId, address indexed nodeOwner);

    NodeRegistry internal registry;
    address internal operator = address(0x0FE);
    address internal stranger = address(0xBAD);
    bytes internal constant KEY = hex"30820122300d06092a864886f70d0101010500";
    bytes internal constant PROOF = hex"01";
    bytes32 internal teeId = keccak256(KEY);

    function setUp() public {
        vm.warp(1_700_000_000);
        registry = new NodeRegistry(address(this));
        vm.prank(operator);
        registry.registerNode(address(0xFEE), "https://node.example", KEY, bytes32(uint256(1)), PROOF);
    }

    function register(address who, bytes memory key) internal returns (bytes32) {
        vm.prank(who);
        return registry.registerNode(address(0xFEE), "https://other.example", key, bytes32(0), PROOF);
    }

    function test_register_stores_an_enabled_unapproved_record() public {
        NodeRegistry.Node memory node = registry.getNode(teeId);
        vm.assertEq(node.teeId, teeId);
        vm.assertEq(node.owner, operator);
        vm.assertEq(node.paymentAddress, address(0xFEE));
        vm.assertTrue(node.enabled);
        vm.assertFalse(node.approved);
        vm.assertEq(node.registeredAt, 1_700_000_000);
        vm.assertEq(node.lastHeartbeat, 1_700_000_000);
        vm.assertEq(node.endpoint, "https://node.example");
        vm.assertEq(node.signingPublicKey, KEY);
        vm.assertEq(node.keyProof, PROOF);
        vm.assertEq(registry.nodeCount(), 1);
        vm.assertEq(registry.nodeIdAt(0), teeId);
        bytes memory key = hex"aa";
        vm.expectEmit();
        emit NodeRegistered(keccak256(key), stranger, address(0xFEE), "https://other.example", key, bytes32(0));
        register(stranger, key);
    }

    function test_register_rejects_bad_records_and_a_taken_key() public {
        vm.expectRevert(NodeRegistry.EmptyPublicKey.selector);
        registry.registerNode(address(1), "https://x", "", bytes32(0), PROOF);
        vm.expectRevert(NodeRegistry.ZeroAddress.selector);
        registry.registerNode(address(0), "https://x", hex"bb", bytes32(0), PROOF);
        vm.expectRevert(NodeRegistry.EmptyEndpoint.selector);
        registry.registerNode(address(1), "", hex"bb", bytes32(0), PROOF);
        vm.expectRevert(NodeRegistry.EmptyKeyProof.selector);
        registry.registerNode(address(1), "https://x", hex"bb", bytes32(0), "");
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NodeExists.selector, teeId));
        registry.registerNode(address(1), "https://x", KEY, bytes32(0), PROOF);
    }

    function test_only_the_node_owner_changes_its_record() public {
        vm.startPrank(operator);
        registry.updateNode(teeId, address(0xFEE2), "https://new.example", bytes32(uint256(2)), hex"02");
        registry.setNodeEnabled(teeId, false);
        vm.warp(1_700_000_100);
        registry.heartbeat(teeId);
        vm.stopPrank();
        NodeRegistry.Node memory node = registry.getNode(teeId);
        vm.assertEq(node.paymentAddress, address(0xFEE2));
        vm.assertEq(node.endpoint, "https://new.example");
        vm.assertEq(node.codeMeasurement, bytes32(uint256(2)));
        vm.assertEq(node.keyProof, hex"02");
        vm.assertFalse(node.enabled);
        vm.assertEq(node.lastHeartbeat, 1_700_000_100);

        vm.startPrank(stranger);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotNodeOwner.selector, teeId, stranger));
        registry.updateNode(teeId, address(1), "https://x", bytes32(0), PROOF);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotNodeOwner.selector, teeId, stranger));
        registry.setNodeEnabled(teeId, true);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotNodeOwner.selector, teeId, stranger));
        registry.heartbeat(teeId);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NotNodeOwner.selector, teeId, stranger));
        registry.transferNodeOwnership(teeId, stranger);
        vm.stopPrank();
    }

    function test_owner_only_changes_of_an_unknown_node_revert_not_found() public {
        bytes memory notFound = abi.encodeWithSelector(NodeRegistry.NodeNotFound.selector, bytes32(0));
        vm.startPrank(operator);
        vm.expectRevert(notFound);
        registry.updateNode(bytes32(0), address(1), "https://x", bytes32(0), PROOF);
        vm.expectRevert(notFound);
        registry.setNodeEnabled(bytes32(0), true);
        vm.expectRevert(notFound);
        registry.heartbeat(bytes32(0));
        vm.expectRevert(notFound);
        registry.transferNodeOwnership(bytes32(0), operator);
        vm.stopPrank();
    }

    function test_update_checks_the_record() public {
        vm.startPrank(operator);
        vm.expectRevert(NodeRegistry.ZeroAddress.selector);
        registry.updateNode(teeId, address(0), "https://x", bytes32(0), PROOF);
        vm.expectRevert(NodeRegistry.EmptyEndpoint.selector);
        registry.updateNode(teeId, address(1), "", bytes32(0), PROOF);
        vm.expectRevert(NodeRegistry.EmptyKeyProof.selector);
        registry.updateNode(teeId, address(1), "https://x", bytes32(0), "");
        vm.stopPrank();
    }

    function test_approval_survives_updates_but_not_a_transfer() public {
        vm.expectEmit();
        emit NodeApproved(teeId, operator);
        registry.approveNode(teeId);
        vm.prank(operator);
        registry.updateNode(teeId, address(0xFEE), "https://node.example", bytes32(0), hex"03");
        vm.assertTrue(registry.getNode(teeId).approved);
        vm.prank(operator);
        vm.expectRevert(NodeRegistry.ZeroAddress.selector);
        registry.transferNodeOwnership(teeId, address(0));
        vm.expectEmit();
        emit NodeRevoked(teeId, stranger);
        vm.prank(operator);
        registry.transferNodeOwnership(teeId, stranger);
        vm.assertFalse(registry.getNode(teeId).approved);
        vm.assertEq(registry.getNode(teeId).owner, stranger);
        vm.prank(stranger);
        registry.transferNodeOwnership(teeId, operator); // unapproved: nothing to revoke
        vm.assertEq(registry.getNode(teeId).owner, operator);
    }

    function test_admission_is_the_registry_owners() public {
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.ApprovalUnchanged.selector, teeId, false));
        registry.revokeNode(teeId);
        registry.approveNode(teeId);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.ApprovalUnchanged.selector, teeId, true));
        registry.approveNode(teeId);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NodeIsApproved.selector, teeId));
        registry.removeNode(teeId);
        registry.revokeNode(teeId);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NodeNotFound.selector, bytes32(0)));
        registry.approveNode(bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NodeNotFound.selector, bytes32(0)));
        registry.removeNode(bytes32(0));
        bytes[3] memory calls = [
            abi.encodeCall(registry.approveNode, (teeId)),
            abi.encodeCall(registry.revokeNode, (teeId)),
            abi.encodeCall(registry.removeNode, (teeId))
        ];
        for (uint256 i; i < calls.length; ++i) {
            vm.prank(stranger);
            (bool ok, bytes memory reason) = address(registry).call(calls[i]);
            vm.assertFalse(ok);
            vm.assertEq(reason, abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        }
        vm.expectRevert(NodeRegistry.RenounceDisabled.selector);
        registry.renounceOwnership();
    }

    function test_remove_frees_the_key_and_swaps_the_last_record_in() public {
        bytes32 second = register(stranger, hex"02");
        bytes32 third = register(stranger, hex"03");
        vm.expectEmit();
        emit NodeRemoved(teeId, operator);
        registry.removeNode(teeId);
        vm.assertEq(registry.nodeCount(), 2);
        vm.assertEq(registry.nodeIdAt(0), third);
        vm.assertEq(registry.nodeIdAt(1), second);
        vm.expectRevert(abi.encodeWithSelector(NodeRegistry.NodeNotFound.selector, teeId));
        registry.getNode(teeId);
        register(operator, KEY);
        vm.assertEq(registry.nodeIdAt(2), teeId);
        registry.removeNode(teeId); // the last record: nothing to swap
        vm.assertEq(registry.nodeCount(), 2);
    }

    function test_list_nodes_pages_through_the_records() public {
        register(stranger, hex"02");
        register(stranger, hex"03");
        vm.assertEq(registry.listNodes(0, 10).length, 3);
        vm.assertEq(registry.listNodes(1, 1).length, 1);
        vm.assertEq(registry.listNodes(1, 1)[0].teeId, keccak256(hex"02"));
        vm.assertEq(registry.listNodes(2, 5).length, 1);
        vm.assertEq(registry.listNodes(3, 5).length, 0);
        vm.assertEq(registry.listNodes(9, 5).length, 0);
    }

    function test_registration_digest_binds_chain_registry_operator_and_endpoint() public view {
        bytes32 expected = keccak256(abi.encode(registry.REGISTRATION_TYPEHASH(), block.chainid, address(registry),
            operator, keccak256("https://node.example")));
        vm.assertEq(registry.registrationDigest(operator, "https://node.example"), expected);
        vm.assertTrue(registry.registrationDigest(stranger, "https://node.example") != expected);
    }
}
