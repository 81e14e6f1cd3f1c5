using System.CommandLine;
using Mobility.Protocol.Identity;

namespace Mobility.Cli.Commands;

/// <summary><c>mob id new|show</c>: host identities (Ed25519 key files and their GUIDs).</summary>
public static class IdCommands
{
    public static Command Create()
    {
        var id = new Command("id", "Create and show host identities (Ed25519 key files; GUID = hash of the public key)");
        id.Subcommands.Add(New());
        id.Subcommands.Add(Show());
        return id;
    }

    private static Command New()
    {
        var key = CommonOptions.KeyFile("Key file to create (written with mode 0600)");
        var force = new Option<bool>("--force") { Description = "Replace an existing key file (its identity is lost)" };
        var command = new Command("new", "Create a new identity and print its GUID") { key, force };
        command.SetHandler(context =>
        {
            var path = Path.GetFullPath(context.Get(key)!);
            var replace = context.Get(force);
            if (!replace && (File.Exists(path) || Directory.Exists(path)))
            {
                throw new CliException(ExitCodes.KeyFile, $"key file '{path}' already exists; use --force to replace it");
            }

            using var hostKey = HostKey.Generate();
            try
            {
                HostKeyFile.Save(hostKey, path, overwrite: replace);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliException(ExitCodes.KeyFile, $"cannot write key file '{path}': {e.Message}", e);
            }

            Print(context, hostKey, path);
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static Command Show()
    {
        var key = CommonOptions.KeyFile();
        var command = new Command("show", "Print the GUID of a key file (with --json also the public key and file path)") { key };
        command.SetHandler(context =>
        {
            var path = Path.GetFullPath(context.Get(key)!);
            using var hostKey = CommonOptions.LoadKey(path);
            Print(context, hostKey, path);
            return Task.FromResult(ExitCodes.Success);
        });
        return command;
    }

    private static void Print(CommandContext context, HostKey key, string path)
    {
        if (context.Output.Json)
        {
            context.Output.WriteJson(w =>
            {
                w.WriteString("guid", key.Guid.ToString());
                w.WriteBase64String("publicKey", key.PublicKey);
                w.WriteString("keyFile", path);
            });
        }
        else
        {
            context.Output.Line(key.Guid.ToString());
        }
    }
}
