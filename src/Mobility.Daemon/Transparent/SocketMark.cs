using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Mobility.Daemon.Transparent;

/// <summary>
/// The mark (SO_MARK, <see cref="TransparentOptions.SocketMark"/>) the daemon sets on its own outgoing
/// transport sockets while transparent mode is on; the interception rules return early on it, so the
/// daemon never intercepts itself, whichever user it runs as (a rule on the daemon's uid would also
/// exempt every other program of that user, root included). Off, nothing is marked: a mark can matter
/// to the host's own policy routing (wg-quick's fwmark rules, for one). Setting it needs CAP_NET_ADMIN,
/// which switching transparent mode on needs anyway.
/// </summary>
public sealed partial class SocketMark(IOptions<MobilitydOptions> options, ILogger<SocketMark> logger)
{
    private const int SolSocket = 1;
    private const int SoMark = 36;
    private readonly uint _mark = options.Value.Transparent.SocketMark;
    private volatile bool _enabled;

    public uint Value => _mark;

    public bool Enabled
    {
        get => _enabled;
        set => _enabled = value;
    }

    /// <summary>Marks <paramref name="socket"/> when enabled; a refusal (no CAP_NET_ADMIN) is logged and the socket stays unmarked.</summary>
    public void Apply(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (!_enabled || !OperatingSystem.IsLinux())
        {
            return;
        }

        try
        {
            socket.SetRawSocketOption(SolSocket, SoMark, BitConverter.GetBytes(_mark));
        }
        catch (SocketException e)
        {
            Log.MarkFailed(logger, _mark, e.Message);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(8440, LogLevel.Warning, "Could not mark a transport socket with 0x{Mark:x}: {Error}; the interception rules may see it.")]
        public static partial void MarkFailed(ILogger logger, uint mark, string error);
    }
}
