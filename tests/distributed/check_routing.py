"""check_routing.py PLANDIR RUN.json SAME_PLAN_OTHER_TRANSPORT.json ONE_NODE.h5:
the pieces of a run went straight between the nodes that exchange them, not
through rank 0. From the run's --stats:
- the coordinator received exactly the output (the bytes of /output of a
  one-node run) and sent exactly the input pieces: what the nodes receive for
  the layers that read the model's input (plan.h5, per_layer column 2);
- nodes sent each other bytes (the halos), and what they sent one another
  equals what they received from one another;
- every node's bytes sent and received, and the coordinator's, are the same
  on the other transport (the transport does not change the routing).
Exit 0 when all hold, 1 naming the first that does not."""
import json
import sys

import h5py


def fail(message):
    print("check_routing: " + message)
    sys.exit(1)


def main():
    plan_dir, run_path, other_path, one_path = sys.argv[1:5]
    run, other = json.load(open(run_path)), json.load(open(other_path))
    with h5py.File(one_path, "r") as one:
        output_bytes = one["output"][...].nbytes
    with h5py.File(plan_dir + "/plan.h5", "r") as plan:
        layers = plan["model/layers"]
        order = [name.decode() if isinstance(name, bytes) else str(name) for name in layers.attrs["order"]]
        model_input = order[0]
        readers = [i for i, name in enumerate(order)
                   if model_input in [x.decode() if isinstance(x, bytes) else str(x)
                                      for x in layers[name].attrs.get("inputs", [])]]
        input_pieces = sum(int(node["per_layer"][i, 2]) for node in plan["nodes"].values() for i in readers)

    coordinator = run["coordinator"]
    if coordinator["bytes_received"] != output_bytes:
        fail(f"rank 0 received {coordinator['bytes_received']} B, not just the output's {output_bytes} B: "
             "activations went through the coordinator")
    if coordinator["bytes_sent"] != input_pieces:
        fail(f"rank 0 sent {coordinator['bytes_sent']} B, not just the input pieces' {input_pieces} B")
    node_sent = sum(node["bytes_sent"] for node in run["nodes"])
    node_received = sum(node["bytes_received"] for node in run["nodes"])
    between_sent = node_sent - coordinator["bytes_received"]
    between_received = node_received - coordinator["bytes_sent"]
    if between_sent != between_received:
        fail(f"nodes sent each other {between_sent} B but received {between_received} B from each other")
    if len(run["nodes"]) > 1 and between_sent <= 0:
        fail("the nodes exchanged nothing: no halo moved between neighbours")
    for key in ("bytes_sent", "bytes_received"):
        if coordinator[key] != other["coordinator"][key]:
            fail(f"the coordinator's {key} differ between transports: {coordinator[key]} and {other['coordinator'][key]}")
        for node, twin in zip(run["nodes"], other["nodes"]):
            if node[key] != twin[key]:
                fail(f"node {node['rank']}'s {key} differ between transports: {node[key]} and {twin[key]}")
    print(f"rank 0 sent the input pieces ({input_pieces} B) and received the output ({output_bytes} B); "
          f"nodes exchanged {between_sent} B directly")


if __name__ == "__main__":
    main()
