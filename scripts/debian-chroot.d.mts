// Types of debian-chroot.mjs (plain JavaScript: it runs before anything is compiled).
/** The tarball of the minimal Debian, made if it is not there yet (by whichever process asks first). */
export declare function debianTarball(): Promise<string>;
