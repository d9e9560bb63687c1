namespace ActorBackup.Engine.Posix;

/// <summary>What a restore takes away of an entry's extended attributes before it sets the snapshot's.</summary>
public enum XattrCleanup
{
    /// <summary>Nothing: a new entry under a folder without a default ACL has none.</summary>
    None,
    /// <summary>The ACLs it inherited from its folder that the snapshot does not hold.</summary>
    InheritedAcls,
    /// <summary>Those, and its user.* and trusted.* attributes the snapshot does not hold (a folder that was there, --force).</summary>
    AllNotHeld,
}
