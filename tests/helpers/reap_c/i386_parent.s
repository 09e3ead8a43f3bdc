# A 32-bit (i386) static parent holding one zombie: fork, print "ready", block in read(0), then print the sum
# 1..50000 (1250025000), reap its child and exit. Built with `as --32` and `ld -m elf_i386`.
        .section .bss
buf:    .space 64
out:    .space 32
        .section .rodata
ready:  .ascii "ready\n"
        .text
        .globl _start
_start:
        movl $2, %eax                   # fork
        int $0x80
        testl %eax, %eax
        jnz parent
        movl $1, %eax                   # the child: exit(0), a zombie from now on
        xorl %ebx, %ebx
        int $0x80
parent:
        movl $4, %eax                   # write(1, "ready\n", 6)
        movl $1, %ebx
        movl $ready, %ecx
        movl $6, %edx
        int $0x80
        movl $3, %eax                   # read(0, buf, 64): blocks until the test writes a line
        xorl %ebx, %ebx
        movl $buf, %ecx
        movl $64, %edx
        int $0x80
        xorl %esi, %esi                 # esi = 1 + 2 + ... + 50000
        movl $50000, %ecx
1:      addl %ecx, %esi
        loop 1b
        movl $out+31, %edi              # decimal, backwards, then a newline
        movb $10, (%edi)
        movl %esi, %eax
        movl $10, %ebx
2:      decl %edi
        xorl %edx, %edx
        divl %ebx
        addb $'0', %dl
        movb %dl, (%edi)
        testl %eax, %eax
        jnz 2b
        movl $out+32, %edx              # write(1, edi, out + 32 - edi)
        subl %edi, %edx
        movl %edi, %ecx
        movl $1, %ebx
        movl $4, %eax
        int $0x80
        movl $7, %eax                   # waitpid(-1, NULL, 0): nothing left behind
        movl $-1, %ebx
        xorl %ecx, %ecx
        xorl %edx, %edx
        int $0x80
        movl $1, %eax                   # exit(0)
        xorl %ebx, %ebx
        int $0x80
