namespace Mobility.Fuzz;

/// <summary>
/// Every fuzz target: one per parser that reads bytes from the network or from a file
/// (docs/fuzzing.md lists them with what each drives). Each is defined, with its seed corpus, in
/// the Targets.*.cs file of its area.
/// </summary>
public static partial class Targets
{
    private static readonly Lazy<IReadOnlyList<FuzzTarget>> AllTargets = new(() =>
    [
        GnsRequest(),
        GnsResponse(),
        GnsStream(),
        GnsRecordFile(),
        Control(),
        Handshake(),
        Resume(),
        Frames(),
        Socks5(),
        OpenHeaderTarget(),
        Dns(),
        KeyFile(),
        Netlink(),
        RelayTarget(),
        PortMappingTarget(),
        UpnpTarget(),
    ]);

    public static IReadOnlyList<FuzzTarget> All => AllTargets.Value;

    public static FuzzTarget? Find(string name) => All.FirstOrDefault(t => t.Name == name);

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes);

    private static void Require(bool condition, string rule)
    {
        if (!condition)
        {
            throw new FuzzFailureException(rule);
        }
    }
}
